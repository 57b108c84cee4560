//! A tiny DNS responder for tests of name resolution (issue 23): it answers
//! `A` questions for the names it is given over UDP, and `NXDOMAIN` for
//! every other name, and records each question it was asked. It is enough
//! for a resolver that reads `/etc/resolv.conf` (hickory, through reqwest)
//! to turn a host name into a loopback address; it is not a DNS server.
//!
//! It never answers with anything but the records it holds, and it stops
//! when dropped.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;

/// A running responder; dropped, it stops.
pub struct Dns {
    addr: SocketAddr,
    asked: Arc<Mutex<Vec<(String, u16)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Dns {
    /// Answers on `bind` (an `IP:PORT`; port 53 for a resolver that reads
    /// `/etc/resolv.conf`) with `records`, name (no trailing dot) to IPv4.
    pub fn start(bind: &str, records: &[(&str, Ipv4Addr)]) -> std::io::Result<Dns> {
        let socket = UdpSocket::bind(bind)?;
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let addr = socket.local_addr()?;
        let records: Vec<(String, Ipv4Addr)> = records
            .iter()
            .map(|(n, ip)| (n.to_ascii_lowercase(), *ip))
            .collect();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (asked, stop) = (asked.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 1500];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    let Some(q) = Question::parse(&buf[..n]) else {
                        continue;
                    };
                    asked.lock().unwrap().push((q.name.clone(), q.qtype));
                    let ip = records.iter().find(|(n, _)| *n == q.name).map(|r| r.1);
                    let _ = socket.send_to(&q.answer(ip), from);
                }
            })
        };
        Ok(Dns {
            addr,
            asked,
            stop,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The names asked so far (lower case, no trailing dot), any type.
    pub fn names_asked(&self) -> Vec<String> {
        self.asked
            .lock()
            .unwrap()
            .iter()
            .map(|(n, _)| n.clone())
            .collect()
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The one question of a query, and the bytes it was asked in.
struct Question<'a> {
    query: &'a [u8],
    /// Where the question section ends.
    end: usize,
    name: String,
    qtype: u16,
}

impl<'a> Question<'a> {
    fn parse(query: &'a [u8]) -> Option<Question<'a>> {
        let qdcount = u16::from_be_bytes([*query.get(4)?, *query.get(5)?]);
        let is_query = query.get(2)? & 0x80 == 0;
        if qdcount != 1 || !is_query {
            return None;
        }
        let mut at = 12;
        let mut labels = Vec::new();
        loop {
            let len = *query.get(at)? as usize;
            at += 1;
            if len == 0 {
                break;
            }
            // No compression in a question we accept.
            if len > 63 {
                return None;
            }
            labels.push(std::str::from_utf8(query.get(at..at + len)?).ok()?);
            at += len;
        }
        let qtype = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
        let qclass = u16::from_be_bytes([*query.get(at + 2)?, *query.get(at + 3)?]);
        if qclass != CLASS_IN {
            return None;
        }
        Some(Question {
            query,
            end: at + 4,
            name: labels.join(".").to_ascii_lowercase(),
            qtype,
        })
    }

    /// The response: an `A` record when the name is known and an `A` was
    /// asked, no answer (NOERROR) for another type of a known name, and
    /// NXDOMAIN for an unknown name.
    fn answer(&self, ip: Option<Ipv4Addr>) -> Vec<u8> {
        let mut r = Vec::with_capacity(self.end + 16);
        r.extend_from_slice(&self.query[..2]); // id
        let rd = self.query[2] & 0x01;
        r.push(0x84 | rd); // QR, AA, and the query's RD
        r.push(if ip.is_some() { 0x80 } else { 0x83 }); // RA; NXDOMAIN when unknown
        let answers = u16::from(ip.is_some() && self.qtype == TYPE_A);
        r.extend_from_slice(&1u16.to_be_bytes()); // qdcount
        r.extend_from_slice(&answers.to_be_bytes());
        r.extend_from_slice(&[0, 0, 0, 0]); // nscount, arcount
        r.extend_from_slice(&self.query[12..self.end]);
        if let (Some(ip), 1) = (ip, answers) {
            r.extend_from_slice(&[0xC0, 12]); // the question's name
            r.extend_from_slice(&TYPE_A.to_be_bytes());
            r.extend_from_slice(&CLASS_IN.to_be_bytes());
            r.extend_from_slice(&60u32.to_be_bytes());
            r.extend_from_slice(&4u16.to_be_bytes());
            r.extend_from_slice(&ip.octets());
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&CLASS_IN.to_be_bytes());
        q
    }

    #[test]
    fn answers_a_known_name_and_refuses_others() {
        let dns = Dns::start("127.0.0.1:0", &[("Site.Test", Ipv4Addr::new(127, 0, 0, 9))]).unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];

        c.send_to(&query("site.test", TYPE_A), dns.addr()).unwrap();
        let n = c.recv(&mut buf).unwrap();
        assert_eq!(&buf[..2], &[0x12, 0x34]);
        assert_eq!(buf[3] & 0x0f, 0, "NOERROR");
        assert_eq!(&buf[6..8], &[0, 1], "one answer");
        assert_eq!(&buf[n - 4..n], &[127, 0, 0, 9]);

        c.send_to(&query("other.test", TYPE_A), dns.addr()).unwrap();
        c.recv(&mut buf).unwrap();
        assert_eq!(buf[3] & 0x0f, 3, "NXDOMAIN");
        assert_eq!(&buf[6..8], &[0, 0]);

        c.send_to(&query("site.test", 28), dns.addr()).unwrap();
        c.recv(&mut buf).unwrap();
        assert_eq!(buf[3] & 0x0f, 0, "AAAA of a known name: NOERROR, no data");
        assert_eq!(&buf[6..8], &[0, 0]);

        assert_eq!(dns.names_asked(), ["site.test", "other.test", "site.test"]);
    }
}
