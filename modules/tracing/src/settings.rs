//! The `tracing` section of the configuration (docs/tracing.md): whether spans are made, where
//! they go, how many are kept, and whose incoming trace context is believed.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

/// The `tracing` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Whether the served apps make and export spans. Off: nothing is made or allocated per
    /// request.
    pub enabled: bool,
    /// The OTLP receiver (a collector, an agent, Jaeger): `http://host:4317` for gRPC.
    pub endpoint: String,
    /// The OTLP transport.
    pub protocol: Protocol,
    /// The share of new traces kept, 0 to 1. Parent-based: a request that arrives with a
    /// (believed) sampled parent is kept, one with an unsampled parent is not.
    pub sample_ratio: f64,
    /// `service.name` of each app.
    pub service_name: ServiceNames,
    /// More resource attributes (`service.namespace`, `deployment.environment.name`, ...): a
    /// map, or the `key=value,key=value` string of `OTEL_RESOURCE_ATTRIBUTES`.
    pub resource_attributes: ResourceAttributes,
    /// `service.instance.id`; empty: a random id per process.
    pub instance_id: String,
    /// How long one export may take, retries included; the connection attempt is bounded by
    /// it too. A collector that does not answer costs an export this long, never a request.
    #[serde(with = "humantime_serde")]
    pub export_timeout: Duration,
    /// How long the flush at shutdown may take, once the server has drained (it adds to the
    /// stop): spans still queued past it, or an export still running, are lost.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Most spans sent in one export.
    pub batch_size: usize,
    /// Most finished spans waiting for export; past it, spans are dropped (and counted in the
    /// SDK's log line), so a slow or absent collector never grows memory or blocks a request.
    pub queue_size: usize,
    /// How often waiting spans are exported (sooner when a batch is full).
    #[serde(with = "humantime_serde")]
    pub scheduled_delay: Duration,
    /// Whether a `traceparent` from any client is believed. Off: only the callers the app
    /// trusts (the HTTP app's trusted proxies, the gRPC app's service credentials) continue
    /// their caller's trace; others start a new one.
    pub trust_incoming: bool,
}

/// The OTLP transports.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP over gRPC (protobuf over HTTP/2), port 4317 by convention.
    #[serde(rename = "grpc")]
    Grpc,
}

/// `service.name` of each app (`go_example-http`, `-grpc`, `-socket` by default).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceNames {
    /// The HTTP app.
    pub http: String,
    /// The gRPC app.
    pub grpc: String,
    /// The socket app.
    pub socket: String,
}

/// `tracing.resource_attributes` as configured: a map, or the `key=value,key=value` text of
/// `OTEL_RESOURCE_ATTRIBUTES`, kept as read. It is parsed only when tracing is on
/// ([`ResourceAttributes::parse`], from the configuration's checks and the tracer), so a bad
/// value in the environment stops no start with tracing off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResourceAttributes {
    /// A map in the files (`{service.namespace: shop}`).
    Map(BTreeMap<String, String>),
    /// The text of `OTEL_RESOURCE_ATTRIBUTES` (or of a file's string).
    Text(String),
}

impl Default for ResourceAttributes {
    fn default() -> Self {
        Self::Map(BTreeMap::new())
    }
}

impl ResourceAttributes {
    /// The attributes by name (text values percent-decoded, as the specification says).
    ///
    /// # Errors
    /// An attribute name is empty, or the text is not `key=value,key=value`.
    pub fn parse(&self) -> Result<BTreeMap<String, String>, String> {
        match self {
            Self::Map(map) => match map.keys().any(|key| key.trim().is_empty()) {
                true => Err("an attribute name is empty".to_owned()),
                false => Ok(map.clone()),
            },
            Self::Text(text) => parse_attributes(text),
        }
    }
}

impl<'de> Deserialize<'de> for ResourceAttributes {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Attributes;

        impl<'de> Visitor<'de> for Attributes {
            type Value = ResourceAttributes;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of attributes or `key=value,key=value`")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(ResourceAttributes::Text(text.to_owned()))
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(ResourceAttributes::default())
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((key, value)) = map.next_entry::<String, Scalar>()? {
                    out.insert(key, value.0);
                }
                Ok(ResourceAttributes::Map(out))
            }
        }

        d.deserialize_any(Attributes)
    }
}

/// An attribute value written as a string, a number or a boolean in YAML.
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(Text)
    }
}

/// Parses `key=value,key=value` (`OTEL_RESOURCE_ATTRIBUTES`); blanks around names and values
/// are dropped, values are percent-decoded.
///
/// # Errors
/// An entry has no `=`, an empty name, or a bad percent escape.
pub fn parse_attributes(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (key, value) = entry
            .split_once('=')
            .ok_or_else(|| format!("`{entry}` is not key=value"))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("`{entry}` has no attribute name"));
        }
        out.insert(key.to_owned(), percent_decode(value.trim())?);
    }
    Ok(out)
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // Two hex digits exactly (`from_str_radix` alone would take "+f").
            let hex = text
                .get(i + 1..i + 3)
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("`{text}` has a bad percent escape"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("`{text}` does not decode to UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_parse_as_otel_resource_attributes_does() {
        let parsed = parse_attributes(
            " service.namespace = shop , team=a%2Cb,deployment.environment.name=eu",
        )
        .unwrap();
        assert_eq!(parsed["service.namespace"], "shop");
        assert_eq!(parsed["team"], "a,b");
        assert_eq!(parsed["deployment.environment.name"], "eu");
        assert!(parse_attributes("").unwrap().is_empty());
        assert!(parse_attributes("novalue").is_err());
        assert!(parse_attributes("=x").is_err());
        assert!(parse_attributes("k=%zz").is_err());
        assert!(parse_attributes("k=%+f").is_err());
        assert!(parse_attributes("k=%2").is_err());
    }
}
