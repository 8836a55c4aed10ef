//! The device's outbox driver: the logic's [`Device`] state machine over an
//! [`OutboxFile`] and a [`Client`].
//!
//! A session recovers the device from its log, then drives its actions in order:
//! `Write`/`Delete`/`Fsync` go to the log at once; `Send { SubmitOp }` is queued and sent
//! only after every storage action before it ran — so an operation is durable locally
//! before any network attempt. The tower's answer goes back to the device as a
//! `SubmitReply`; what it does with it (forget on `Accepted`/`Duplicate`/`Conflict`, keep on
//! `InFlight`/`Retry`) comes back as more actions. The first "no answer at all" ends the
//! sending: the tower is unreachable and everything stays queued. The session fsyncs before
//! it returns (the logic issues no fsync after a delete).
//!
//! Keys are never reused: an acknowledged operation leaves the outbox, so the log also
//! remembers the highest key ever issued, and recovery hands that to `Device::recover`,
//! which numbers new keys after it; every key also has 64 random bits from the OS (a
//! restored backup cannot bring a key back). The device is who its identity file says
//! ([`super::identity`]): every submission carries its proof.
//!
//! "Acknowledged" is not the last word: an acknowledged operation is *awaiting* until the
//! tower tells the origin's verdict ([`DeviceSession::check_status`], `device status`); a
//! conflict or rejection found later at the origin, and a refusal at the tower, is kept in
//! the log as the operation's outcome, never dropped without a word.
//!
//! Map: [`DeviceSession`], [`Outcome`], [`SendResult`], [`StatusResult`],
//! [`SessionError`].
//!
//! Not covered: retry timers (a CLI run sends once; the next run or `--flush` retries),
//! reads through the device logic (`fetch` verifies on its own).

use super::http::{Client, ClientError};
use super::identity::DeviceIdentity;
use super::outbox::{OutboxFile, OutboxLog};
use sovereign_logic::device::{Device, DeviceConfig, DeviceError, FinalOutcome};
use sovereign_logic::io::Action;
use sovereign_logic::protocol::{
    DeviceId, IdemKey, Message, OpKind, OpStatus, Operation, SubmitReply, TowerId,
};
use sovereign_logic::time::Time;
use sovereign_store::{Store, StoreError};
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

/// Why a session could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The outbox log could not be read or written.
    #[error("device outbox: {0}")]
    Store(#[from] StoreError),
    /// The device refused (outbox full).
    #[error("{0}")]
    Device(#[from] DeviceError),
    /// The device issued a key at or below one it issued before (a logic bug; refused
    /// rather than risking a silent duplicate).
    #[error("the device issued key {key}, but keys up to {floor} were already used; not queued")]
    KeyReuse {
        /// the key issued
        key: IdemKey,
        /// the highest key number used before
        floor: u64,
    },
    /// The device did not do what its contract says (a logic bug).
    #[error("device logic: {0}")]
    Logic(String),
    /// The device's identity could not be read or created.
    #[error("device identity: {0}")]
    Identity(std::io::Error),
}

/// What became of one queued operation in this session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendResult {
    /// The tower holds it durably; it left the outbox. `duplicate`: an earlier send had
    /// already delivered it.
    Acked {
        /// the tower already held it
        duplicate: bool,
    },
    /// It stays queued: the tower asked to retry (busy, in flight, storage trouble), or
    /// could not be reached.
    Queued {
        /// why, for a person
        reason: String,
        /// whether the tower answered at all
        reachable: bool,
    },
    /// The tower refused it: its key was used before with another body. The device
    /// dropped it from the outbox (the logic's rule); the operation is reported here.
    Conflict {
        /// the tower's message
        message: String,
    },
    /// The tower refused it for good: not this device's key (403), or an operation the
    /// origin would reject (422 naming the field). Dropped from the outbox, reported here
    /// and kept in the log as its outcome.
    Refused {
        /// the tower's message
        message: String,
    },
}

/// What a status check learnt about one awaited operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusResult {
    /// Still held at the tower, not yet confirmed by the origin.
    Pending,
    /// The final word: applied, conflict, rejected (kept in the log as the outcome).
    Final(FinalOutcome),
    /// The tower does not know the key (another tower's, or forgotten): still awaited.
    Unknown,
    /// The tower could not be asked.
    Unreachable(String),
}

/// One operation and what became of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The operation.
    pub op: Operation,
    /// Sends tried in all (over every run).
    pub attempts: u32,
    /// The result.
    pub result: SendResult,
}

/// A device recovered from its outbox, ready to queue and send.
pub struct DeviceSession {
    device: Device,
    store: OutboxFile,
    identity: DeviceIdentity,
    id: DeviceId,
    /// The highest key number ever issued before this session's submissions.
    floor: u64,
    /// Operations the device asked to send, in order, each once.
    to_send: VecDeque<Operation>,
    /// Sends tried per key, as the log had them plus this session's.
    attempts: BTreeMap<IdemKey, u32>,
}

impl std::fmt::Debug for DeviceSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceSession")
            .field("id", &self.id)
            .field("store", &self.store)
            .field("pending", &self.device.pending())
            .finish()
    }
}

impl DeviceSession {
    /// Open the device whose state is in `dir`: its identity (created on first use), its
    /// outbox, and the device recovered from it.
    pub fn open(dir: &Path) -> Result<DeviceSession, SessionError> {
        let store = OutboxFile::open(dir)?;
        let identity = DeviceIdentity::load_or_create(dir).map_err(SessionError::Identity)?;
        let id = identity.id();
        let log = store.load()?;
        let durable = log.durable();
        // The tower the logic addresses is whichever `--tower` this run talks to.
        let config = DeviceConfig::new(id, TowerId(0));
        // The keys' random parts: fresh from the OS in every process.
        let seed = DeviceIdentity::fresh_seed().map_err(SessionError::Identity)?;
        let device = Device::recover(config, seed, Time::ZERO, &durable, log.last_key);
        let attempts = log
            .ops
            .values()
            .map(|q| (q.op.key.clone(), q.attempts))
            .collect();
        let mut session = DeviceSession {
            device,
            store,
            identity,
            id,
            floor: log.last_key,
            to_send: VecDeque::new(),
            attempts,
        };
        session.run_storage()?;
        Ok(session)
    }

    /// The outbox as the log holds it now.
    pub fn log(&self) -> Result<OutboxLog, SessionError> {
        Ok(self.store.load()?)
    }

    /// The outbox file.
    pub fn store(&self) -> &OutboxFile {
        &self.store
    }

    /// This device's identity.
    pub fn id(&self) -> DeviceId {
        self.id
    }

    /// Ask the tower what became of every awaited operation; feed the answers to the
    /// device, keep every final word in the log (durably before this returns) and report
    /// each operation's status. `client` `None`: offline, nothing asked.
    pub fn check_status(
        &mut self,
        client: Option<&Client>,
    ) -> Result<Vec<(Operation, StatusResult)>, SessionError> {
        let log = self.store.load()?;
        let mut out = Vec::new();
        let mut statuses = Vec::new();
        for (key, op) in &log.awaiting {
            let Some(client) = client else {
                out.push((op.clone(), StatusResult::Unreachable("offline".into())));
                continue;
            };
            match client.op_status(key, &self.identity) {
                Ok(status) => statuses.push((key.clone(), status)),
                Err(e @ ClientError::Unreachable(_)) => {
                    // Offline: ask about nothing more this time.
                    let why = e.to_string();
                    for op in log.awaiting.values().skip(out.len() + statuses.len()) {
                        out.push((op.clone(), StatusResult::Unreachable(why.clone())));
                    }
                    break;
                }
                Err(e) => out.push((op.clone(), StatusResult::Unreachable(e.to_string()))),
            }
        }
        if statuses.is_empty() {
            return Ok(out);
        }
        let before: usize = self.device.outcomes().count();
        self.device.handle_message(
            Time::ZERO,
            Message::StatusReply {
                statuses: statuses.clone(),
            },
        );
        let finals: BTreeMap<IdemKey, FinalOutcome> = self
            .device
            .outcomes()
            .skip(before)
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect();
        for (key, status) in statuses {
            let Some(op) = log.awaiting.get(&key) else {
                continue;
            };
            let result = match (finals.get(&key), status) {
                (Some(f), _) => {
                    let (result, detail) = final_words(f);
                    self.store.note_outcome(op, result, &detail)?;
                    StatusResult::Final(f.clone())
                }
                (None, OpStatus::Pending) => StatusResult::Pending,
                (None, _) => StatusResult::Unknown,
            };
            out.push((op.clone(), result));
        }
        self.run_storage()?;
        self.store.fsync()?;
        Ok(out)
    }

    /// Queue `kind`: when this returns `Ok`, the operation is written and fsynced. Nothing
    /// is sent yet ([`DeviceSession::send`] does that).
    pub fn submit(&mut self, kind: OpKind) -> Result<Operation, SessionError> {
        let key = self.device.submit(Time::ZERO, kind)?;
        if key.number() <= self.floor {
            return Err(SessionError::KeyReuse {
                key,
                floor: self.floor,
            });
        }
        self.run_storage()?;
        self.to_send
            .iter()
            .find(|op| op.key == key)
            .cloned()
            .ok_or_else(|| {
                SessionError::Logic(format!(
                    "the device queued {key} but did not ask to send it"
                ))
            })
    }

    /// Run every storage action the device has issued; queue its sends.
    fn run_storage(&mut self) -> Result<(), SessionError> {
        while let Some(action) = self.device.poll_action() {
            match action {
                Action::Write { record, .. } => self.store.write(&record)?,
                Action::Delete { key, .. } => self.store.delete(&key)?,
                Action::Fsync { .. } => self.store.fsync()?,
                Action::Send {
                    msg: Message::SubmitOp { op },
                    ..
                } => {
                    if !self.to_send.iter().any(|o| o.key == op.key) {
                        self.to_send.push_back(op);
                    }
                }
                // A device issues nothing else; reads go through `fetch`.
                Action::Send { .. }
                | Action::Probe { .. }
                | Action::Emit(_)
                | Action::ReadChunk { .. }
                | Action::PowerOff { .. } => {}
            }
        }
        Ok(())
    }

    /// Send everything queued, oldest first, until done or the tower is unreachable
    /// (`client` `None`: offline, send nothing). Acknowledged operations leave the outbox
    /// durably before this returns.
    pub fn send(&mut self, client: Option<&Client>) -> Result<Vec<Outcome>, SessionError> {
        let mut outcomes = Vec::new();
        let mut offline: Option<String> = match client {
            None => Some("offline".to_string()),
            Some(_) => None,
        };
        while let Some(op) = self.to_send.pop_front() {
            let key = op.key.clone();
            let tried = self.attempts.get(&key).copied().unwrap_or(0);
            let (Some(client), None) = (client, &offline) else {
                outcomes.push(Outcome {
                    op,
                    attempts: tried,
                    result: SendResult::Queued {
                        reason: offline.clone().unwrap_or_default(),
                        reachable: false,
                    },
                });
                continue;
            };
            let attempts = tried + 1;
            self.attempts.insert(key.clone(), attempts);
            let (reply, result) = match client.submit(&op, &self.identity) {
                Ok(s) => {
                    let result = match &s.reply {
                        SubmitReply::Accepted => SendResult::Acked { duplicate: false },
                        SubmitReply::Duplicate => SendResult::Acked { duplicate: true },
                        SubmitReply::Conflict => SendResult::Conflict {
                            message: s.detail.clone(),
                        },
                        SubmitReply::Forbidden { .. } | SubmitReply::Invalid { .. } => {
                            SendResult::Refused {
                                message: s.detail.clone(),
                            }
                        }
                        SubmitReply::InFlight | SubmitReply::Retry { .. } => SendResult::Queued {
                            reason: s.detail.clone(),
                            reachable: true,
                        },
                    };
                    (s.reply, result)
                }
                Err(e) => {
                    let reason = match &e {
                        ClientError::Unreachable(_) => e.to_string(),
                        other => format!("tower error: {other}"),
                    };
                    offline = Some(reason.clone());
                    (
                        SubmitReply::Retry {
                            reason: reason.clone(),
                        },
                        SendResult::Queued {
                            reason,
                            reachable: false,
                        },
                    )
                }
            };
            match &result {
                SendResult::Queued { reason, .. } => {
                    self.store.note_attempt(&key, attempts, reason)?;
                }
                SendResult::Conflict { message } => {
                    self.store.note_outcome(&op, "conflict", message)?;
                }
                SendResult::Refused { message } => {
                    self.store.note_outcome(&op, "refused", message)?;
                }
                SendResult::Acked { .. } => {}
            }
            self.device.handle_message(
                Time::ZERO,
                Message::SubmitReply {
                    key: key.clone(),
                    reply,
                },
            );
            self.run_storage()?;
            outcomes.push(Outcome {
                op,
                attempts,
                result,
            });
        }
        // The logic deletes without an fsync of its own: make the removals durable.
        self.store.fsync()?;
        Ok(outcomes)
    }

    /// Operations still queued (the device's count).
    pub fn pending(&self) -> usize {
        self.device.pending()
    }
}

/// The log's `result` and `detail` of a final outcome.
fn final_words(f: &FinalOutcome) -> (&'static str, String) {
    match f {
        FinalOutcome::Applied { seq } => (
            "applied",
            format!("applied at the origin (apply seq {seq})"),
        ),
        FinalOutcome::Conflict => (
            "conflict",
            "the origin applied another operation under this key; this one will never be applied"
                .to_string(),
        ),
        FinalOutcome::Rejected { reason } => {
            ("rejected", format!("rejected by the origin: {reason}"))
        }
        FinalOutcome::Unknown => ("unknown", "the tower no longer knows this key".to_string()),
    }
}
