//! A fast path for the audit records Janssen writes: one flat JSON object whose keys are the
//! eight known fields, whose strings have no escapes, and whose values have the expected types.
//!
//! It never decides that a record is bad: anything it does not recognise (an unknown or repeated
//! key, an escape, a value of another type, a number JSON does not allow, a missing field,
//! trailing bytes) makes it give up, and the record goes through serde_json, which accepts or
//! rejects it as it always has. What it accepts, serde_json accepts with the same values (a
//! property test checks this on mutated records). The text must already be valid UTF-8.

use std::borrow::Cow;

use authstat_core::event::{AuditAction, AuditEvent};

/// The bytes that end a plain string: `"`, `\\` and the control characters.
const STOP: [bool; 256] = {
    let mut table = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        table[c] = true;
        c += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Whether any byte of `word` is `"`, `\\` or a control character (below 0x20): the classic
/// has-a-zero-byte test on `word` XOR the byte, and on `word` minus 0x20.
fn stops(word: u64) -> bool {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    (zero(word ^ (ONES * u64::from(b'"'))) | zero(word ^ (ONES * u64::from(b'\\'))) | control) != 0
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.at) {
            self.at += 1;
        }
    }

    /// `c` after optional whitespace.
    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.b.get(self.at) == Some(&c)).then(|| self.at += 1)
    }

    /// A string without escapes or control characters, after optional whitespace.
    fn string(&mut self, text: &'a str) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        // The first byte that ends a plain string: `"`, or an escape or a control character
        // (which JSON does not allow inside a string), both left to serde_json.
        let rest = &self.b[start..];
        let mut len = 0;
        // Eight bytes at a time while none of them stops the string.
        while let Some(chunk) = rest.get(len..len + 8) {
            let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
            if stops(word) {
                break;
            }
            len += 8;
        }
        while !STOP[usize::from(*rest.get(len)?)] {
            len += 1;
        }
        if rest[len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        // On UTF-8 boundaries: `"` is ASCII and cannot be inside a multi-byte character.
        Some(&text[start..start + len])
    }

    /// `literal` exactly, not followed by more letters or digits.
    fn literal(&mut self, literal: &[u8]) -> Option<()> {
        self.ws();
        let end = self.at + literal.len();
        if self.b.get(self.at..end) != Some(literal)
            || self.b.get(end).is_some_and(u8::is_ascii_alphanumeric)
        {
            return None;
        }
        self.at = end;
        Some(())
    }

    fn boolean(&mut self) -> Option<bool> {
        self.ws();
        match self.b.get(self.at) {
            Some(b't') => self.literal(b"true").map(|()| true),
            Some(b'f') => self.literal(b"false").map(|()| false),
            _ => None,
        }
    }

    /// A string or `null`.
    fn optional_string(&mut self, text: &'a str) -> Option<Option<&'a str>> {
        self.ws();
        if self.b.get(self.at) == Some(&b'n') {
            return self.literal(b"null").map(|()| None);
        }
        self.string(text).map(Some)
    }

    /// An integer as JSON writes it (no leading zeros, no fraction or exponent) within i64.
    fn integer(&mut self) -> Option<i64> {
        self.ws();
        let start = self.at;
        let negative = self.b.get(self.at) == Some(&b'-');
        if negative {
            self.at += 1;
        }
        let digits = self.b[self.at..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 || digits > 18 || (digits > 1 && self.b[self.at] == b'0') {
            return None;
        }
        self.at += digits;
        if let Some(b'.' | b'e' | b'E') = self.b.get(self.at) {
            return None;
        }
        std::str::from_utf8(&self.b[start..self.at])
            .ok()?
            .parse()
            .ok()
    }
}

/// The record, if it is one of the plain shapes (see the module's documentation).
pub(super) fn audit_event(text: &str) -> Option<AuditEvent<'_>> {
    let mut c = Cursor {
        b: text.as_bytes(),
        at: 0,
    };
    c.eat(b'{')?;
    let mut seen = 0u8;
    let mut event = AuditEvent {
        ip: None,
        action: AuditAction::Other(String::new()),
        timestamp: 0,
        mac_address: None,
        client_id: None,
        username: None,
        scope: None,
        success: false,
    };
    loop {
        let key = c.string(text)?;
        c.eat(b':')?;
        let bit = match key {
            "ip" => {
                event.ip = c.optional_string(text)?.map(Cow::Borrowed);
                1
            }
            "action" => {
                event.action = AuditAction::parse(c.string(text)?);
                2
            }
            "timestamp" => {
                event.timestamp = c.integer()?;
                4
            }
            "macAddress" => {
                event.mac_address = c.optional_string(text)?.map(Cow::Borrowed);
                8
            }
            "clientId" => {
                event.client_id = c.optional_string(text)?.map(Cow::Borrowed);
                16
            }
            "username" => {
                event.username = c.optional_string(text)?.map(Cow::Borrowed);
                32
            }
            "scope" => {
                event.scope = c.optional_string(text)?.map(Cow::Borrowed);
                64
            }
            "success" => {
                event.success = c.boolean()?;
                128
            }
            _ => return None,
        };
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
        c.ws();
        match c.b.get(c.at) {
            Some(b',') => c.at += 1,
            Some(b'}') => {
                c.at += 1;
                break;
            }
            _ => return None,
        }
    }
    c.ws();
    // The required fields (action, timestamp, success), and nothing after the object.
    (seen & (2 | 4 | 128) == (2 | 4 | 128) && c.at == c.b.len()).then_some(event)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const PLAIN: &str = r#"{"ip":"10.0.0.5","action":"USER_AUTHORIZATION","timestamp":1706745603590,"macAddress":"02-42-AC-11-00-02","clientId":"2000.7810d591","username":"admin","scope":"openid profile","success":true}"#;
    const PRETTY: &str = "{\n  \"ip\" : \"10.0.0.5\",\n  \"action\" : \"USER_AUTHORIZATION\",\n  \"timestamp\" : 1706745603590,\n  \"macAddress\" : \"02-42-AC-11-00-02\",\n  \"clientId\" : \"2000.7810d591\",\n  \"username\" : null,\n  \"scope\" : \"openid profile email\",\n  \"success\" : false\n}\n";

    fn serde(text: &str) -> Option<AuditEvent<'_>> {
        serde_json::from_str(text).ok()
    }

    #[test]
    fn plain_and_pretty_records_take_the_fast_path() {
        for text in [PLAIN, PRETTY] {
            let fast = audit_event(text).expect("fast path");
            assert_eq!(Some(fast), serde(text));
        }
    }

    #[test]
    fn anything_unusual_is_left_to_serde_json() {
        for text in [
            r#"{"action":"X","timestamp":1,"success":true,"extra":1}"#,
            r#"{"action":"X","timestamp":1,"success":true,"action":"Y"}"#,
            r#"{"action":"X","timestamp":1,"success":true,"username":"a\"b"}"#,
            r#"{"action":"X","timestamp":01,"success":true}"#,
            r#"{"action":"X","timestamp":1.0,"success":true}"#,
            r#"{"action":"X","timestamp":1e3,"success":true}"#,
            r#"{"action":"X","timestamp":"1","success":true}"#,
            r#"{"action":"X","timestamp":1,"success":"true"}"#,
            r#"{"action":"X","timestamp":1,"success":truex}"#,
            r#"{"action":"X","timestamp":1}"#,
            r#"{"action":"X","timestamp":1,"success":true} x"#,
            r#"{"action":"X","timestamp":1,"success":true,}"#,
            r#"{"action":null,"timestamp":1,"success":true}"#,
            r#"{"action":"X","timestamp":99999999999999999999,"success":true}"#,
            "{\"action\":\"X\",\"timestamp\":1,\"success\":true,\"ip\":\"a\tb\"}",
        ] {
            assert!(audit_event(text).is_none(), "{text}");
        }
    }

    proptest! {
        /// Whatever the fast path accepts, serde_json accepts with the same values.
        #[test]
        fn the_fast_path_agrees_with_serde_json(
            base in prop::sample::select(vec![PLAIN, PRETTY]),
            edits in prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(vec![
                "", " ", "\n", "\"", "\\", ",", ":", "{", "}", "0", "-", "1", "e", ".", "null",
                "true", "false", "x", "é", "\t", "\"ip\":\"1\",",
            ])), 0..4),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..2),
        ) {
            let mut text = base.to_owned();
            for (at, piece) in &edits {
                let mut i = at.index(text.len() + 1);
                while !text.is_char_boundary(i) { i -= 1; }
                text.insert_str(i, piece);
            }
            for at in &cuts {
                if !text.is_empty() {
                    let mut i = at.index(text.len());
                    while !text.is_char_boundary(i) { i -= 1; }
                    let ch = text[i..].chars().next().map_or(0, char::len_utf8);
                    text.replace_range(i..i + ch, "");
                }
            }
            if let Some(fast) = audit_event(&text) {
                prop_assert_eq!(Some(fast), serde(&text), "{}", text);
            }
        }
    }
}
