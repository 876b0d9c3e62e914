//! The socket protocol (docs/websocket.md, "Messages"): the reply to each text message (the
//! original's echo and JSON exchange, then `ping`, `join`, `leave`, `publish`), and the close
//! a read error ends the connection with.

use actix_ws::{CloseCode, ProtocolError};
use bytestring::ByteString;
use serde_json::{Map, Value, json};

use super::connection::{ConnectionTask, End};
use crate::service::error::ServiceError;
use crate::service::socket::{Frame, RoomFrame};
use crate::web::socket_frame_limit::is_frame_limit_error;

impl ConnectionTask {
    /// The reply to a text message (docs/websocket.md, "Messages").
    ///
    /// # Errors
    /// What the client is answered with an error frame (a malformed or refused request).
    pub(super) fn reply_to_text(&mut self, text: &str) -> Result<Frame, ServiceError> {
        if text.trim_start().starts_with('{')
            && let Ok(object) = serde_json::from_str::<Map<String, Value>>(text)
        {
            return self.reply_to_object(object);
        }
        Ok(echo(text))
    }

    fn reply_to_object(&mut self, mut object: Map<String, Value>) -> Result<Frame, ServiceError> {
        let connection = &self.connection;
        let Some(kind) = object.get("type") else {
            // The original's JSON exchange: {"name","age"} -> {"data":{"message":...}}.
            return Ok(
                match (scalar(object.get("name")), scalar(object.get("age"))) {
                    (Some(name), Some(age)) => json!({
                        "data": {"message": format!("recv msg：{name}_{age}")}
                    })
                    .to_string()
                    .into(),
                    _ => echo(&Value::Object(object).to_string()),
                },
            );
        };
        let kind = kind
            .as_str()
            .ok_or_else(|| ServiceError::invalid("type", "must be a string"))?
            .to_owned();
        if kind == "ping" {
            return Ok(ByteString::from_static(r#"{"type":"pong"}"#));
        }
        let room = match object.get("room") {
            Some(Value::String(room)) => room.clone(),
            _ => return Err(ServiceError::invalid("room", "a string is required")),
        };
        match kind.as_str() {
            "join" => {
                let joined = self.hub.join(connection, &room)?;
                if let Some(outbox) = joined.outbox {
                    self.window.flushed.hand_over(outbox);
                }
                Ok(
                    json!({"type": "joined", "room": room, "members": joined.members})
                        .to_string()
                        .into(),
                )
            }
            "leave" => {
                self.hub.leave(connection, &room)?;
                Ok(json!({"type": "left", "room": room}).to_string().into())
            }
            "publish" => {
                let data = object.remove("data").unwrap_or(Value::Null);
                let mut message = json!({
                    "type": "message",
                    "room": room,
                    "from": format!("c{}", connection.id()),
                    "data": data,
                });
                // Anonymous members never see a user id.
                let anonymous: Frame = message.to_string().into();
                let frame = match connection.user() {
                    Some(user) => {
                        message["user"] = json!(user);
                        RoomFrame {
                            for_users: message.to_string().into(),
                            for_anonymous: anonymous,
                        }
                    }
                    None => anonymous.into(),
                };
                let delivered = self.hub.publish(connection, &room, frame)?;
                self.rate.charge(delivered);
                Ok(
                    json!({"type": "published", "room": room, "delivered": delivered})
                        .to_string()
                        .into(),
                )
            }
            other => Err(ServiceError::invalid(
                "type",
                format!("unknown message type `{other}` (ping, join, leave, publish)"),
            )),
        }
    }
}

/// The original's echo prefix.
pub(super) const ECHO_PREFIX: &str = "recv data:";

pub(super) fn echo(text: &str) -> Frame {
    let mut reply = String::with_capacity(ECHO_PREFIX.len() + text.len());
    reply.push_str(ECHO_PREFIX);
    reply.push_str(text);
    reply.into()
}

/// A string or a number as text (the original read both fields as strings).
fn scalar(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The close for a read error: 1009 past a size limit, 1007 for text that is not UTF-8,
/// 1002 for any other protocol violation (reserved bits, bad opcodes, unmasked frames).
pub(super) fn protocol_end(e: &ProtocolError) -> End {
    match e {
        ProtocolError::Overflow => End::Close(CloseCode::Size, "message too big"),
        ProtocolError::Io(io)
            if io.to_string() == CONTINUATION_OVERFLOW || is_frame_limit_error(io) =>
        {
            End::Close(CloseCode::Size, "message too big")
        }
        ProtocolError::Io(io) if is_utf8_error(io) => {
            End::Close(CloseCode::Invalid, "text is not UTF-8")
        }
        ProtocolError::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            End::Close(CloseCode::Protocol, "protocol error")
        }
        ProtocolError::Io(_) => End::Peer(None),
        _ => End::Close(CloseCode::Protocol, "protocol error"),
    }
}

/// Whether a read error is text that is not UTF-8: actix-ws wraps the `Utf8Error` of a single
/// frame, and the text of one for an aggregated message (the tests pin both).
fn is_utf8_error(io: &std::io::Error) -> bool {
    io.kind() == std::io::ErrorKind::InvalidData
        && io.get_ref().is_some_and(|inner| {
            inner.is::<std::str::Utf8Error>() || inner.to_string().contains("utf-8")
        })
}

/// actix-ws's error text for an aggregated message over its limit (no variant of its own;
/// the oversize tests pin it).
const CONTINUATION_OVERFLOW: &str = "Exceeded maximum continuation size";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_keeps_the_original_prefix() {
        assert_eq!(echo("hi"), "recv data:hi");
    }

    #[test]
    fn scalars_read_strings_and_numbers() {
        assert_eq!(scalar(Some(&json!("18"))).as_deref(), Some("18"));
        assert_eq!(scalar(Some(&json!(18))).as_deref(), Some("18"));
        assert_eq!(scalar(Some(&json!([1]))), None);
        assert_eq!(scalar(None), None);
    }

    #[test]
    fn read_errors_map_to_close_codes() {
        let size = std::io::Error::other(CONTINUATION_OVERFLOW);
        assert!(matches!(
            protocol_end(&ProtocolError::Io(size)),
            End::Close(CloseCode::Size, _)
        ));
        assert!(matches!(
            protocol_end(&ProtocolError::Overflow),
            End::Close(CloseCode::Size, _)
        ));
        let limit = std::io::Error::other(actix_web::error::PayloadError::Overflow);
        assert!(matches!(
            protocol_end(&ProtocolError::Io(limit)),
            End::Close(CloseCode::Size, _)
        ));
        let bytes = vec![b'a', 0xff];
        let invalid = std::str::from_utf8(&bytes).unwrap_err();
        // One frame (actix-ws wraps the error) and an aggregated message (its text).
        for utf8 in [
            std::io::Error::new(std::io::ErrorKind::InvalidData, invalid),
            std::io::Error::new(std::io::ErrorKind::InvalidData, invalid.to_string()),
        ] {
            assert!(matches!(
                protocol_end(&ProtocolError::Io(utf8)),
                End::Close(CloseCode::Invalid, _)
            ));
        }
        // actix-http's error for reserved bits: a protocol error, not bad text.
        let reserved = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "Received a frame with non-zero reserved bits",
        );
        assert!(matches!(
            protocol_end(&ProtocolError::Io(reserved)),
            End::Close(CloseCode::Protocol, _)
        ));
        assert!(matches!(
            protocol_end(&ProtocolError::UnmaskedFrame),
            End::Close(CloseCode::Protocol, _)
        ));
    }
}
