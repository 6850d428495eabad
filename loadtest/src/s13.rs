//! A minimal Diameter S13 client for the load generator: the capabilities exchange once, then
//! ME-Identity-Check-Requests prepared as bytes before the clock starts, many outstanding on
//! one connection, and answers read by their Message Length with a scan for the result.
//! Messages are built with imeidb's own codec; the answers are read here by hand, so a server
//! that wrote something the codec could not read would show as errors.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use imeidb::diameter::codec::{self, Avps, Message, flags};
use imeidb::diameter::dict::{self, avp, command};

/// The peer table entry `loadtest/run` configures for the load generator.
pub const ORIGIN_HOST: &str = "loadgen.imeidb.test";
/// Its realm.
pub const ORIGIN_REALM: &str = "loadgen.test";
/// The realm of imeidb's default configuration, where the ECRs go.
pub const DESTINATION_REALM: &str = "imeidb.localdomain";

/// The result of one ECA, as an HTTP-like status for the tally: 200 with an
/// Equipment-Status, 404 for DIAMETER_ERROR_EQUIPMENT_UNKNOWN, 400 for another 5xxx, 500
/// otherwise.
pub fn status_of(answer: &[u8]) -> u16 {
    let Some(message) = Message::new(answer) else {
        return 500;
    };
    let mut status = 500;
    for a in message.avps() {
        let Ok(a) = a else { return 500 };
        if a.is(avp::RESULT_CODE) {
            status = match a.u32() {
                Ok(2001) => 200,
                Ok(5000..=5999) => 400,
                _ => 500,
            };
        } else if a.is(avp::EXPERIMENTAL_RESULT) {
            let code = Avps::new(a.data)
                .flatten()
                .find(|inner| inner.is(avp::EXPERIMENTAL_RESULT_CODE))
                .and_then(|inner| inner.u32().ok());
            status = if code == Some(5422) { 404 } else { 500 };
        }
    }
    status
}

/// The bytes of one ECR for `imei` (the `n`th of the run: its Session-Id and identifiers).
pub fn ecr(imei: &str, n: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let start = codec::begin(
        &mut out,
        flags::REQUEST | flags::PROXIABLE,
        command::ME_IDENTITY_CHECK,
        dict::S13_APPLICATION,
        n,
        n,
    );
    codec::put(
        &mut out,
        avp::SESSION_ID,
        format!("{ORIGIN_HOST};1;{n}").as_bytes(),
    );
    codec::put_u32(&mut out, avp::AUTH_SESSION_STATE, dict::NO_STATE_MAINTAINED);
    codec::put(&mut out, avp::ORIGIN_HOST, ORIGIN_HOST.as_bytes());
    codec::put(&mut out, avp::ORIGIN_REALM, ORIGIN_REALM.as_bytes());
    codec::put(
        &mut out,
        avp::DESTINATION_REALM,
        DESTINATION_REALM.as_bytes(),
    );
    let group = codec::begin_group(&mut out, avp::TERMINAL_INFORMATION);
    codec::put(&mut out, avp::IMEI, imei.as_bytes());
    codec::put(&mut out, avp::SOFTWARE_VERSION, b"01");
    codec::finish_group(&mut out, group);
    codec::put(&mut out, avp::USER_NAME, b"732101234567890");
    codec::finish(&mut out, start);
    out
}

/// One S13 connection, capabilities exchanged.
pub struct Connection {
    requests: Requests,
    answers: Answers,
}

/// The writing half of a [`Connection`].
pub struct Requests(OwnedWriteHalf);

/// The reading half of a [`Connection`].
pub struct Answers {
    stream: OwnedReadHalf,
    buffer: BytesMut,
}

impl Connection {
    /// Connects to `addr` and exchanges capabilities as the load generator's peer.
    ///
    /// # Errors
    /// The connection's errors, or a CEA that is not 2001.
    pub async fn open(addr: &str) -> Result<Connection, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (reader, writer) = stream.into_split();
        let mut connection = Connection {
            requests: Requests(writer),
            answers: Answers {
                stream: reader,
                buffer: BytesMut::with_capacity(64 * 1024),
            },
        };
        let mut cer = Vec::new();
        let start = codec::begin(
            &mut cer,
            flags::REQUEST,
            command::CAPABILITIES_EXCHANGE,
            dict::BASE_APPLICATION,
            0,
            0,
        );
        codec::put(&mut cer, avp::ORIGIN_HOST, ORIGIN_HOST.as_bytes());
        codec::put(&mut cer, avp::ORIGIN_REALM, ORIGIN_REALM.as_bytes());
        codec::put_address(&mut cer, avp::HOST_IP_ADDRESS, [127, 0, 0, 1].into());
        codec::put_u32(&mut cer, avp::VENDOR_ID, 0);
        codec::put(&mut cer, avp::PRODUCT_NAME, b"imeidb loadgen");
        codec::put_u32(&mut cer, avp::AUTH_APPLICATION_ID, dict::S13_APPLICATION);
        codec::finish(&mut cer, start);
        let mut statuses = Vec::new();
        connection
            .exchange(&cer, 1, &mut statuses)
            .await
            .map_err(|e| format!("capabilities exchange: {e}"))?;
        if statuses != [200] {
            return Err(format!(
                "the server refused the capabilities exchange (is {ORIGIN_HOST} in its peer table?)"
            ));
        }
        Ok(connection)
    }

    /// The connection's two halves, for a client whose writes do not wait for its reads.
    pub fn split(self) -> (Requests, Answers) {
        (self.requests, self.answers)
    }

    /// Sends `requests` (`count` messages) in one write and reads their `count` answers,
    /// pushing each answer's status.
    ///
    /// # Errors
    /// The connection's errors, or an answer that cannot be framed.
    pub async fn exchange(
        &mut self,
        requests: &[u8],
        count: usize,
        statuses: &mut Vec<u16>,
    ) -> Result<(), String> {
        let before = statuses.len();
        self.requests.send(requests).await?;
        while statuses.len() - before < count {
            self.answers.receive(statuses).await?;
        }
        Ok(())
    }
}

impl Requests {
    /// Sends `requests` (whole messages) in one write.
    ///
    /// # Errors
    /// The connection's errors.
    pub async fn send(&mut self, requests: &[u8]) -> Result<(), String> {
        self.0.write_all(requests).await.map_err(|e| e.to_string())
    }
}

impl Answers {
    /// Waits for at least one answer, then pushes the status of every answer that has
    /// arrived whole.
    ///
    /// # Errors
    /// The connection's errors, or an answer that cannot be framed.
    pub async fn receive(&mut self, statuses: &mut Vec<u16>) -> Result<(), String> {
        loop {
            let before = statuses.len();
            while let Some(length) =
                codec::frame(&self.buffer, 1 << 20).map_err(|e| e.to_string())?
            {
                if self.buffer.len() < length {
                    break;
                }
                statuses.push(status_of(&self.buffer[..length]));
                self.buffer.advance(length);
            }
            if statuses.len() > before {
                return Ok(());
            }
            self.buffer.reserve(64 * 1024);
            if self
                .stream
                .read_buf(&mut self.buffer)
                .await
                .map_err(|e| e.to_string())?
                == 0
            {
                return Err("the server closed the connection".into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_well_formed_ecrs() {
        let bytes = ecr("35209900176148", 7);
        assert_eq!(codec::frame(&bytes, 1 << 20), Ok(Some(bytes.len())));
        let message = Message::new(&bytes).unwrap();
        assert_eq!(message.header.command, 324);
        assert_eq!(message.header.hop_by_hop, 7);
        assert!(
            message
                .validate(|a| a.is(avp::TERMINAL_INFORMATION))
                .is_ok()
        );
    }
}
