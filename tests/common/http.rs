//! A minimal HTTP client for the tests: `GET` over a plain `TcpStream`, as HTTP/1.0, so the
//! answer ends with the connection and is never chunked. No client library, and no proxy from the
//! environment between a test and a loopback address. Prometheus's API is asked through it, and
//! so can `sim --metrics` (`/metrics`, `/healthz`, `/readyz`) be.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// `text` with everything but the unreserved characters of RFC 3986 percent-encoded, for a
/// query string.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// An HTTP answer: status, headers (names in lower case) and body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code, e.g. 200.
    pub status: u16,
    /// Each header's name, in lower case, and value, in the order sent.
    pub headers: Vec<(String, String)>,
    /// The body, as text (lossy if it is not UTF-8).
    pub body: String,
}

impl HttpResponse {
    /// The value of the first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` from `address` (`host:port`) over HTTP/1.0, with 5 s bounds on connecting and on
/// each read; an error says what went wrong.
pub fn http_get(address: &str, path: &str) -> Result<HttpResponse, String> {
    let socket: SocketAddr = address
        .parse()
        .map_err(|e| format!("address {address:?}: {e}"))?;
    let bound = Duration::from_secs(5);
    let mut stream = TcpStream::connect_timeout(&socket, bound)
        .map_err(|e| format!("connecting to {address}: {e}"))?;
    stream.set_read_timeout(Some(bound)).ok();
    stream.set_write_timeout(Some(bound)).ok();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {address}\r\nAccept: */*\r\n\r\n"
    )
    .map_err(|e| format!("sending GET {path} to {address}: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("reading the answer to GET {path} from {address}: {e}"))?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("GET {path} from {address}: an answer without a head: {raw:?}"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("GET {path} from {address}: a bad status line {status_line:?}"))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    Ok(HttpResponse {
        status,
        headers,
        body: body.to_string(),
    })
}
