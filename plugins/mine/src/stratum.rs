//! Stratum v1, the client side: newline-delimited JSON-RPC. [`Client`] is
//! a pure state machine (lines in, events and lines out) so it is tested
//! without a socket; `miner` drives it over the connection.
//!
//! Supported: `mining.subscribe`, `mining.authorize` (user
//! `<wallet>.<worker>`), `mining.notify`, `mining.set_difficulty`,
//! `mining.set_extranonce`, `mining.submit`, `client.reconnect`,
//! `client.show_message`, `client.get_version`.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::hex;
use crate::work::JobTemplate;

/// How this miner introduces itself in `mining.subscribe`.
pub const AGENT: &str = concat!("pictor-mine/", env!("CARGO_PKG_VERSION"));

/// Longest `client.reconnect` wait honoured.
pub const MAX_RECONNECT_WAIT: Duration = Duration::from_secs(300);

/// Work to mine: a job, with the extranonce and difficulty in force when
/// it arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct Work {
    /// The job.
    pub job: JobTemplate,
    /// This connection's extranonce1.
    pub extranonce1: Vec<u8>,
    /// Bytes of extranonce2 the miner chooses.
    pub extranonce2_size: usize,
    /// Share difficulty.
    pub difficulty: f64,
}

/// A share to submit.
#[derive(Debug, Clone, PartialEq)]
pub struct Share {
    /// The job it solves.
    pub job_id: String,
    /// The extranonce2 it used.
    pub extranonce2: Vec<u8>,
    /// The ntime it used.
    pub ntime: u32,
    /// Its nonce.
    pub nonce: u32,
}

/// Something the pool said that the miner acts on.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The subscription is answered (extranonce known).
    Subscribed,
    /// The worker is authorized: shares will count.
    Authorized,
    /// The pool refused the worker (a wrong wallet or worker name): retrying
    /// will not help.
    Refused(String),
    /// New work; earlier work is void if `work.job.clean`.
    Work(Work),
    /// A new share difficulty (the pool's rules differ on whether it applies
    /// to the current job: the miner applies it to the current job only when
    /// it is higher, so no share is sent below what the pool expects).
    Difficulty(f64),
    /// A share was answered.
    ShareAnswered {
        /// Whether the pool accepted it.
        accepted: bool,
        /// The pool's reason, for a rejection.
        reason: Option<String>,
    },
    /// The pool asks the miner to reconnect after `wait` (to `elsewhere`,
    /// which this miner cannot do: the host grants only the configured pool).
    Reconnect {
        /// How long to wait first.
        wait: Duration,
        /// `host:port` the pool named, if any.
        elsewhere: Option<String>,
    },
    /// A message from the pool operator.
    Message(String),
}

/// What one line from the pool produced.
#[derive(Debug, Default, PartialEq)]
pub struct Handled {
    /// Events, in order.
    pub events: Vec<Event>,
    /// A line to send back (an answer to the pool's request).
    pub reply: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Request {
    Subscribe,
    Authorize,
    Submit,
}

/// The client state of one connection.
#[derive(Debug)]
pub struct Client {
    user: String,
    password: String,
    next_id: u64,
    pending: HashMap<u64, Request>,
    extranonce: Option<(Vec<u8>, usize)>,
    difficulty: f64,
    authorized: bool,
    /// A job that came before the subscription's answer.
    early: Option<JobTemplate>,
}

impl Client {
    /// A client that authorizes as `user` (`<wallet>.<worker>`).
    pub fn new(user: &str, password: &str) -> Self {
        Client {
            user: user.to_string(),
            password: password.to_string(),
            next_id: 1,
            pending: HashMap::new(),
            extranonce: None,
            // Stratum's default until the pool sets one.
            difficulty: 1.0,
            authorized: false,
            early: None,
        }
    }

    /// Whether the pool has authorized the worker.
    pub fn authorized(&self) -> bool {
        self.authorized
    }

    /// Submits waiting for an answer.
    pub fn unanswered_submits(&self) -> usize {
        self.pending
            .values()
            .filter(|r| **r == Request::Submit)
            .count()
    }

    fn request(&mut self, kind: Request, method: &str, params: Value) -> String {
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, kind);
        json!({"id": id, "method": method, "params": params}).to_string()
    }

    /// The `mining.subscribe` line (send it first).
    pub fn subscribe(&mut self) -> String {
        self.request(Request::Subscribe, "mining.subscribe", json!([AGENT]))
    }

    /// The `mining.authorize` line.
    pub fn authorize(&mut self) -> String {
        let params = json!([self.user, self.password]);
        self.request(Request::Authorize, "mining.authorize", params)
    }

    /// The `mining.submit` line for `share`.
    pub fn submit(&mut self, share: &Share) -> String {
        let params = json!([
            self.user,
            share.job_id,
            hex::encode(&share.extranonce2),
            format!("{:08x}", share.ntime),
            format!("{:08x}", share.nonce),
        ]);
        self.request(Request::Submit, "mining.submit", params)
    }

    /// Handles one line from the pool.
    pub fn handle(&mut self, line: &str) -> Result<Handled, String> {
        let message: Value = serde_json::from_str(line)
            .map_err(|e| format!("pool sent invalid JSON ({e}): {}", clip(line)))?;
        let id = message.get("id").cloned().unwrap_or(Value::Null);
        match message.get("method").and_then(Value::as_str) {
            Some(method) => {
                self.on_request(method, message.get("params").unwrap_or(&Value::Null), id)
            }
            None => self.on_response(&message, &id),
        }
    }

    fn on_response(&mut self, message: &Value, id: &Value) -> Result<Handled, String> {
        let Some(kind) = id.as_u64().and_then(|id| self.pending.remove(&id)) else {
            return Ok(Handled::default()); // an answer to nothing we asked: ignore
        };
        let result = message.get("result").unwrap_or(&Value::Null);
        let error = error_text(message.get("error"));
        let mut handled = Handled::default();
        match kind {
            Request::Subscribe => {
                if let Some(e) = error {
                    return Err(format!("pool refused mining.subscribe: {e}"));
                }
                let en1 = result
                    .get(1)
                    .and_then(Value::as_str)
                    .ok_or("mining.subscribe answer has no extranonce1")?;
                let en1 =
                    hex::decode(en1).map_err(|e| format!("mining.subscribe extranonce1: {e}"))?;
                let size = result
                    .get(2)
                    .and_then(Value::as_u64)
                    .ok_or("mining.subscribe answer has no extranonce2_size")?;
                let size = usize::try_from(size)
                    .ok()
                    .filter(|s| (1..=16).contains(s))
                    .ok_or(format!("extranonce2_size {size} is not 1-16 bytes"))?;
                if en1.len() > 64 {
                    return Err(format!("extranonce1 of {} bytes is too long", en1.len()));
                }
                self.extranonce = Some((en1, size));
                handled.events.push(Event::Subscribed);
                if let Some(job) = self.early.take() {
                    handled.events.extend(self.work(job));
                }
            }
            Request::Authorize => match (result.as_bool(), error) {
                (Some(true), _) => {
                    self.authorized = true;
                    handled.events.push(Event::Authorized);
                }
                (_, Some(e)) => handled.events.push(Event::Refused(e)),
                _ => handled
                    .events
                    .push(Event::Refused("the pool answered false".into())),
            },
            Request::Submit => {
                let accepted = result.as_bool() == Some(true) && error.is_none();
                let reason = if accepted {
                    None
                } else {
                    Some(error.unwrap_or_else(|| "the pool answered false".into()))
                };
                handled
                    .events
                    .push(Event::ShareAnswered { accepted, reason });
            }
        }
        Ok(handled)
    }

    fn on_request(&mut self, method: &str, params: &Value, id: Value) -> Result<Handled, String> {
        let mut handled = Handled::default();
        match method {
            "mining.notify" => {
                let job = JobTemplate::from_notify(params)?;
                if self.extranonce.is_some() {
                    handled.events.extend(self.work(job));
                } else {
                    self.early = Some(job);
                }
            }
            "mining.set_difficulty" => {
                let d = params
                    .get(0)
                    .and_then(Value::as_f64)
                    .filter(|d| d.is_finite() && *d > 0.0);
                let d = d.ok_or_else(|| {
                    format!(
                        "mining.set_difficulty {} is not a positive number",
                        clip(&params.to_string())
                    )
                })?;
                self.difficulty = d;
                handled.events.push(Event::Difficulty(d));
            }
            "mining.set_extranonce" => {
                let en1 = params
                    .get(0)
                    .and_then(Value::as_str)
                    .ok_or("mining.set_extranonce has no extranonce1")?;
                let en1 = hex::decode(en1).map_err(|e| format!("mining.set_extranonce: {e}"))?;
                let size = params
                    .get(1)
                    .and_then(Value::as_u64)
                    .and_then(|s| usize::try_from(s).ok())
                    .filter(|s| (1..=16).contains(s));
                let size = size.ok_or("mining.set_extranonce extranonce2_size is not 1-16")?;
                // Applies from the next job on.
                self.extranonce = Some((en1, size));
            }
            "client.reconnect" => {
                let host = params
                    .get(0)
                    .and_then(Value::as_str)
                    .filter(|h| !h.is_empty());
                let port = params.get(1).and_then(|p| {
                    p.as_u64()
                        .or_else(|| p.as_str().and_then(|s| s.parse().ok()))
                });
                let wait = params
                    .get(2)
                    .and_then(Value::as_f64)
                    .filter(|w| w.is_finite() && *w >= 0.0)
                    .unwrap_or(0.0);
                let wait = Duration::from_secs_f64(wait.min(MAX_RECONNECT_WAIT.as_secs_f64()));
                let elsewhere =
                    host.map(|h| format!("{h}:{}", port.map_or("?".into(), |p| p.to_string())));
                handled.events.push(Event::Reconnect { wait, elsewhere });
            }
            "client.show_message" => {
                let text = params.get(0).and_then(Value::as_str).unwrap_or_default();
                handled.events.push(Event::Message(clip(text).to_string()));
            }
            "client.get_version" => {
                handled.reply = Some(json!({"id": id, "result": AGENT, "error": null}).to_string());
            }
            other if !id.is_null() => {
                handled.reply = Some(json!({"id": id, "result": null, "error": [20, format!("unsupported method {}", clip(other)), null]}).to_string());
            }
            _ => {}
        }
        Ok(handled)
    }

    fn work(&self, job: JobTemplate) -> Option<Event> {
        let (extranonce1, extranonce2_size) = self.extranonce.clone()?;
        Some(Event::Work(Work {
            job,
            extranonce1,
            extranonce2_size,
            difficulty: self.difficulty,
        }))
    }
}

/// A Stratum error (`[code, "message", data]`, or a string) as text;
/// `None` for no error.
fn error_text(error: Option<&Value>) -> Option<String> {
    match error? {
        Value::Null => None,
        Value::Array(parts) => {
            let code = parts.first().and_then(Value::as_i64);
            let text = parts
                .get(1)
                .and_then(Value::as_str)
                .unwrap_or("unknown error");
            Some(match code {
                Some(code) => format!("{} (code {code})", clip(text)),
                None => clip(text).to_string(),
            })
        }
        Value::String(text) => Some(clip(text).to_string()),
        other => Some(clip(&other.to_string()).to_string()),
    }
}

/// At most 200 bytes of `text` (on a character boundary), for messages.
fn clip(text: &str) -> &str {
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTIFY: &str = r#"{"id":null,"method":"mining.notify","params":["bf","4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000","01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20020862062f503253482f04b8864e5008","072f736c7573682f000000000100f2052a010000001976a914d23fcdf86f7e756a64a7a9688ef9903327048ed988ac00000000",[],"00000002","1c2ac4af","504e86b9",false]}"#;

    fn subscribed() -> Client {
        let mut c = Client::new("bc1qwallet.wkr-1", "x");
        assert_eq!(
            c.subscribe(),
            r#"{"id":1,"method":"mining.subscribe","params":["pictor-mine/0.1.0"]}"#
        );
        let h = c
            .handle(r#"{"id":1,"result":[[["mining.notify","ae68"]],"08000002",4],"error":null}"#)
            .unwrap();
        assert_eq!(h.events, vec![Event::Subscribed]);
        c
    }

    #[test]
    fn subscribe_authorize_notify_submit() {
        let mut c = subscribed();
        assert_eq!(
            c.authorize(),
            r#"{"id":2,"method":"mining.authorize","params":["bc1qwallet.wkr-1","x"]}"#
        );
        assert_eq!(
            c.handle(r#"{"id":2,"result":true,"error":null}"#)
                .unwrap()
                .events,
            vec![Event::Authorized]
        );
        assert!(c.authorized());
        assert_eq!(
            c.handle(r#"{"id":null,"method":"mining.set_difficulty","params":[0.5]}"#)
                .unwrap()
                .events,
            vec![Event::Difficulty(0.5)]
        );
        let events = c.handle(NOTIFY).unwrap().events;
        let [Event::Work(work)] = &events[..] else {
            panic!("{events:?}")
        };
        assert_eq!(
            (work.job.id.as_str(), work.difficulty, work.extranonce2_size),
            ("bf", 0.5, 4)
        );
        assert_eq!(work.extranonce1, vec![8, 0, 0, 2]);
        assert_eq!(
            (
                work.job.version,
                work.job.nbits,
                work.job.ntime,
                work.job.clean
            ),
            (2, 0x1c2a_c4af, 0x504e_86b9, false)
        );

        let share = Share {
            job_id: "bf".into(),
            extranonce2: vec![1, 0, 0, 0],
            ntime: 0x504e_86b9,
            nonce: 0x0a02_9ed1,
        };
        assert_eq!(
            c.submit(&share),
            r#"{"id":3,"method":"mining.submit","params":["bc1qwallet.wkr-1","bf","01000000","504e86b9","0a029ed1"]}"#
        );
        assert_eq!(c.unanswered_submits(), 1);
        let answer = c.handle(r#"{"id":3,"result":true,"error":null}"#).unwrap();
        assert_eq!(
            answer.events,
            vec![Event::ShareAnswered {
                accepted: true,
                reason: None
            }]
        );
        c.submit(&share);
        let answer = c
            .handle(r#"{"id":4,"result":null,"error":[23,"Low difficulty share",null]}"#)
            .unwrap();
        let reason = Some("Low difficulty share (code 23)".to_string());
        assert_eq!(
            answer.events,
            vec![Event::ShareAnswered {
                accepted: false,
                reason
            }]
        );
        assert_eq!(c.unanswered_submits(), 0);
    }

    #[test]
    fn a_job_before_the_subscription_answer_is_kept() {
        let mut c = Client::new("w.x", "x");
        c.subscribe();
        assert!(c.handle(NOTIFY).unwrap().events.is_empty());
        let events = c
            .handle(r#"{"id":1,"result":[[],"00",2],"error":null}"#)
            .unwrap()
            .events;
        assert!(
            matches!(&events[..], [Event::Subscribed, Event::Work(w)] if w.extranonce2_size == 2 && w.difficulty == 1.0),
            "{events:?}"
        );
    }

    #[test]
    fn refusals_reconnects_and_requests_from_the_pool() {
        let mut c = subscribed();
        c.authorize();
        let refused = c
            .handle(r#"{"id":2,"result":null,"error":[24,"Unauthorized worker",null]}"#)
            .unwrap();
        assert_eq!(
            refused.events,
            vec![Event::Refused("Unauthorized worker (code 24)".into())]
        );
        let reconnect = c
            .handle(r#"{"id":null,"method":"client.reconnect","params":["other.example",3334,2]}"#)
            .unwrap();
        let expected = Event::Reconnect {
            wait: Duration::from_secs(2),
            elsewhere: Some("other.example:3334".into()),
        };
        assert_eq!(reconnect.events, vec![expected]);
        let plain = c
            .handle(r#"{"id":null,"method":"client.reconnect","params":[]}"#)
            .unwrap();
        assert_eq!(
            plain.events,
            vec![Event::Reconnect {
                wait: Duration::ZERO,
                elsewhere: None
            }]
        );
        let version = c
            .handle(r#"{"id":7,"method":"client.get_version","params":[]}"#)
            .unwrap();
        assert_eq!(
            version.reply.unwrap(),
            r#"{"error":null,"id":7,"result":"pictor-mine/0.1.0"}"#
        );
        let unknown = c
            .handle(r#"{"id":8,"method":"mining.frobnicate","params":[]}"#)
            .unwrap();
        assert!(
            unknown
                .reply
                .unwrap()
                .contains("unsupported method mining.frobnicate")
        );
        assert!(
            c.handle(r#"{"id":null,"method":"mining.nothing","params":[]}"#)
                .unwrap()
                .reply
                .is_none()
        );
    }

    #[test]
    fn bad_messages_are_errors_not_panics() {
        let mut c = subscribed();
        for (line, expected) in [
            ("not json", "invalid JSON"),
            (
                r#"{"id":null,"method":"mining.set_difficulty","params":[-1]}"#,
                "not a positive number",
            ),
            (
                r#"{"id":null,"method":"mining.set_difficulty","params":["x"]}"#,
                "not a positive number",
            ),
            (
                r#"{"id":null,"method":"mining.notify","params":["x"]}"#,
                "9 params",
            ),
        ] {
            let err = c.handle(line).unwrap_err();
            assert!(err.contains(expected), "{line}: {err}");
        }
        let mut fresh = Client::new("w.x", "x");
        fresh.subscribe();
        let err = fresh
            .handle(r#"{"id":1,"result":[[],"00",0],"error":null}"#)
            .unwrap_err();
        assert!(err.contains("extranonce2_size 0"), "{err}");
        // Answers to nothing asked are ignored.
        assert_eq!(
            c.handle(r#"{"id":99,"result":true,"error":null}"#).unwrap(),
            Handled::default()
        );
    }
}
