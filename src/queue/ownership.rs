//! Who may run a job, and who may write its record: the pure decisions of the ownership
//! protocol, in one place. Workers (`actors::worker`), the rescue (`rescue`) and the
//! heartbeats (`nodes`) act on what these functions decide; none decides on its own.
//!
//! The record in KV is the single source of truth. Its writers, and what they may write:
//! - the API creates it `queued`, and may cancel it while it is `queued`;
//! - a worker *claims* it (`running`, `node` = its own) and then writes the result, or hands
//!   it back (`queued` again), or a worker gives up on it (`internal_error`).
//!
//! Invariants:
//! 1. **Final is final.** Every write is compare-and-set: on the revision last read, or
//!    create-if-absent. Nothing is written over a final record.
//! 2. **Writes are fenced by the claim.** A worker writes the result or the hand-back only on
//!    the revision its own claim got ([`Claim::revision`]). A node that was taken over (its
//!    claim superseded by a successor's) cannot overwrite the successor's record, and a
//!    hand-back can never overwrite a final record.
//! 3. **Claim before running.** A worker runs a job only after its claim was stored.
//! 4. **One worker per job per node.** A node's [`Local`] registry holds at most one entry per
//!    job, and only the worker that made an entry removes it; a second delivery of a job that
//!    a worker here holds waits for it ([`Delivered::Recheck`]).
//! 5. **A live holder keeps its job.** A delivery of a job `running` on another node is left
//!    to that node while its heartbeat lists the job, or is too old to tell ([`holder`]); a
//!    job is taken over only from a node that is gone (silent for `nodes::GONE_AFTER`), or
//!    whose heartbeat after the claim no longer lists it. A node that was only frozen may
//!    still be running the job when it wakes; invariant 2 keeps its result out.
//! 6. **A copy is never acked for the holder.** A delivery that finds the job held through
//!    the same stream message keeps that message in progress until the job ends, rather than
//!    ack it while the holder still runs.
//!
//! `tests` below checks invariants 1 to 5 over random interleavings of deliveries,
//! heartbeats, silences, rescues, finishes and hand-backs.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use uuid::Uuid;

use std::collections::HashMap;
use std::time::Duration;

use super::nodes::NodeEntry;
use crate::model::{ExecutionRecord, Status};

/// Whether the node a running record names still works on that job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// It holds the job, through the message with this stream sequence.
    Alive { stream_seq: u64 },
    /// Its entry is too old to tell (it claimed the job after its last heartbeat).
    Unknown,
    /// It died, or it lost the job (its worker was replaced): the job is anyone's.
    Gone,
}

/// Decides from the holder's entry (if any) whether the job with `id`, claimed by that node at
/// `claimed_at`, is still in its hands.
pub fn holder(
    entry: Option<&NodeEntry>,
    id: &Uuid,
    claimed_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Holder {
    let Some(entry) = entry.filter(|e| !e.is_gone(now)) else {
        return Holder::Gone;
    };
    if let Some(held) = entry.holding.iter().find(|h| h.execution_id == *id) {
        return Holder::Alive {
            stream_seq: held.stream_seq,
        };
    }
    match claimed_at {
        Some(claimed) if claimed >= entry.last_heartbeat => Holder::Unknown,
        _ => Holder::Gone,
    }
}

/// What a worker knows when a job is delivered to it.
pub struct Sight<'a> {
    /// The record as read (None: expired, or published from outside the API).
    pub record: Option<&'a ExecutionRecord>,
    /// This node's id.
    pub node: &'a str,
    /// Whether a worker on this node holds the job (its [`Local`] entry).
    pub held_here: bool,
    /// When the record runs on another node: whether that node still has it.
    pub elsewhere: Option<Holder>,
    /// The delivered message's place in the stream.
    pub stream_seq: u64,
    /// Deliveries of the job so far, this one included.
    pub attempt: i64,
    pub max_deliver: i64,
}

/// What a worker does with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// Nothing to run (final already, or a copy of a job a live node holds): ack.
    Skip,
    /// Held, by a worker here or through this very message: keep it in progress, look again.
    Recheck,
    /// Delivered too often: record `internal_error`.
    GiveUp,
    /// Claim it and run it.
    Claim,
}

pub fn on_delivery(sight: &Sight) -> Delivered {
    if let Some(record) = sight.record {
        if record.status.is_final() {
            return Delivered::Skip;
        }
        if record.status == Status::Running {
            let ours = record.node.as_deref() == Some(sight.node);
            match (ours, sight.elsewhere) {
                // A worker here has it; if none has, its worker died and the job is ours.
                (true, _) if sight.held_here => return Delivered::Recheck,
                (true, _) | (false, Some(Holder::Gone)) => {}
                (false, Some(Holder::Alive { stream_seq })) if stream_seq != sight.stream_seq => {
                    return Delivered::Skip
                }
                // Through this very message, or too early to tell, or not looked up yet.
                (false, _) => return Delivered::Recheck,
            }
        }
    }
    if sight.held_here {
        return Delivered::Recheck;
    }
    match sight.attempt > sight.max_deliver {
        true => Delivered::GiveUp,
        false => Delivered::Claim,
    }
}

/// What a write must find in KV to go through (invariant 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No record under the key.
    Absent,
    /// The record at exactly this revision.
    Revision(u64),
}

impl Expect {
    /// The expectation for writing over what was read at `revision` (None: nothing read).
    pub fn read_at(revision: Option<u64>) -> Expect {
        revision.map_or(Expect::Absent, Expect::Revision)
    }
}

/// The running record a worker writes to claim the job. `record` is the one read (None: start
/// afresh from `fresh`).
pub fn claim(
    record: Option<&ExecutionRecord>,
    fresh: impl FnOnce() -> ExecutionRecord,
    node: &str,
    now: DateTime<Utc>,
) -> ExecutionRecord {
    let base = record.cloned().unwrap_or_else(fresh);
    ExecutionRecord {
        status: Status::Running,
        node: Some(node.to_string()),
        started_at: Some(now),
        ..base
    }
}

/// A stored claim: the running record and the revision its write got. Every later write of
/// the claiming worker expects that revision (invariant 2).
#[derive(Debug, Clone)]
pub struct Claim {
    pub record: ExecutionRecord,
    pub revision: u64,
}

impl Claim {
    /// The record handed back: queued, so that the next node takes it at once rather than
    /// wait to see whether this one still holds it.
    pub fn hand_back(&self) -> ExecutionRecord {
        ExecutionRecord {
            status: Status::Queued,
            node: None,
            started_at: None,
            ..self.record.clone()
        }
    }

    pub fn expect(&self) -> Expect {
        Expect::Revision(self.revision)
    }
}

/// After a fenced write was refused: whether what is stored is our own write (it landed,
/// but its answer was lost) or a successor's.
pub fn is_own_write(stored: Option<&ExecutionRecord>, ours: &ExecutionRecord) -> bool {
    stored == Some(ours)
}

/// The jobs this node's workers hold, each with the ticket of the worker that registered it
/// (invariant 4). `T` is what reaches the job's worker (its kill switch).
pub struct Local<T> {
    entries: DashMap<Uuid, (u64, Option<T>)>,
    next: AtomicU64,
}

/// A worker's proof that it registered a job; only it can release the entry.
#[derive(Debug, PartialEq, Eq)]
pub struct Ticket {
    id: Uuid,
    number: u64,
}

impl<T> Default for Local<T> {
    fn default() -> Self {
        Local {
            entries: DashMap::new(),
            next: AtomicU64::new(1),
        }
    }
}

impl<T> Local<T> {
    /// Registers a job for the calling worker; None when another worker here holds it.
    pub fn register(&self, id: Uuid, value: T) -> Option<Ticket> {
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        match self.entries.entry(id) {
            dashmap::Entry::Occupied(_) => None,
            dashmap::Entry::Vacant(slot) => {
                slot.insert((number, Some(value)));
                Some(Ticket { id, number })
            }
        }
    }

    /// Removes the entry, if it is still the ticket holder's.
    pub fn release(&self, ticket: Ticket) {
        self.entries
            .remove_if(&ticket.id, |_, (number, _)| *number == ticket.number);
    }

    /// Removes the entry of a worker that died holding the job (no other worker here could
    /// register it meanwhile).
    pub fn evict(&self, id: &Uuid) {
        self.entries.remove(id);
    }

    pub fn holds(&self, id: &Uuid) -> bool {
        self.entries.contains_key(id)
    }

    /// Takes what reaches the job's worker, leaving the entry (the job still runs here until
    /// its worker releases it). None when no worker here holds it, or it was taken already.
    pub fn take(&self, id: &Uuid) -> Option<T> {
        self.entries
            .get_mut(id)
            .and_then(|mut entry| entry.1.take())
    }

    /// Takes what reaches every job's worker.
    pub fn take_all(&self) -> Vec<T> {
        self.entries
            .iter_mut()
            .filter_map(|mut entry| entry.1.take())
            .collect()
    }
}

/// What the rescue makes of a delivered message not seen acked (see `rescue`).
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Someone has it, or will soon.
    Held,
    /// Nobody seems to have it; lost if it stays so for [`super::nodes::GONE_AFTER`].
    Suspect,
    /// Its job is long over; only the ack went missing.
    Leftover,
}

pub fn verdict(
    record: Option<&ExecutionRecord>,
    sequence: u64,
    nodes: &HashMap<String, NodeEntry>,
    now: DateTime<Utc>,
    ack_wait: Duration,
) -> Verdict {
    let listed = nodes
        .values()
        .filter(|e| !e.is_gone(now))
        .any(|e| e.holding.iter().any(|h| h.stream_seq == sequence));
    let claimed_by_live_node = |record: &ExecutionRecord| {
        let node = record.node.as_deref().unwrap_or_default();
        let holder = holder(
            nodes.get(node),
            &record.execution_id,
            record.started_at,
            now,
        );
        holder != Holder::Gone
    };
    match record {
        Some(r) if r.status.is_final() => {
            let over = r.finished_at.unwrap_or(now);
            match (now - over).to_std().unwrap_or_default() > ack_wait {
                true => Verdict::Leftover,
                false => Verdict::Held,
            }
        }
        _ if listed => Verdict::Held,
        Some(r) if r.status == Status::Running && claimed_by_live_node(r) => Verdict::Held,
        // Queued, running on a node that lost it, or published from outside with no record.
        _ => Verdict::Suspect,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LimitsConfig;
    use crate::languages::Languages;
    use crate::model::ExecuteRequest;
    use crate::queue::nodes::{Held, GONE_AFTER};

    const ACK_WAIT: Duration = Duration::from_secs(30);

    fn record(status: Status, node: Option<&str>, at: DateTime<Utc>) -> ExecutionRecord {
        let job = ExecuteRequest::new("python", "print(1)")
            .validate(&Languages::load(None).unwrap(), &LimitsConfig::default())
            .unwrap();
        ExecutionRecord {
            node: node.map(str::to_string),
            started_at: Some(at),
            finished_at: status.is_final().then_some(at),
            ..ExecutionRecord::new(&job, status)
        }
    }

    fn node(id: &str, last_heartbeat: DateTime<Utc>, holding: Vec<Held>) -> (String, NodeEntry) {
        (
            id.to_string(),
            NodeEntry::worker(id, last_heartbeat, holding),
        )
    }

    fn secs(n: i64) -> chrono::Duration {
        chrono::Duration::seconds(n)
    }

    #[test]
    fn a_job_running_on_a_node_that_holds_it_is_held() {
        let now = Utc::now();
        let running = record(Status::Running, Some("a"), now - secs(10));
        let held = Held {
            execution_id: running.execution_id,
            stream_seq: 4,
        };
        let nodes = HashMap::from([node("a", now - secs(2), vec![held])]);
        assert_eq!(
            verdict(Some(&running), 4, &nodes, now, ACK_WAIT),
            Verdict::Held
        );
    }

    #[test]
    fn a_job_running_on_a_silent_or_forgetful_node_is_suspect() {
        let now = Utc::now();
        let running = record(Status::Running, Some("a"), now - secs(10));
        let silent = HashMap::from([node("a", now - secs(20), vec![])]);
        let forgetful = HashMap::from([node("a", now - secs(1), vec![])]);
        assert_eq!(
            verdict(Some(&running), 4, &silent, now, ACK_WAIT),
            Verdict::Suspect
        );
        assert_eq!(
            verdict(Some(&running), 4, &forgetful, now, ACK_WAIT),
            Verdict::Suspect
        );
        assert_eq!(
            verdict(Some(&running), 4, &HashMap::new(), now, ACK_WAIT),
            Verdict::Suspect
        );
    }

    #[test]
    fn a_queued_job_is_suspect_unless_a_live_node_lists_its_message() {
        let now = Utc::now();
        let queued = record(Status::Queued, None, now);
        let held = Held {
            execution_id: queued.execution_id,
            stream_seq: 9,
        };
        let live = HashMap::from([node("b", now - secs(1), vec![held])]);
        let gone = HashMap::from([node("b", now - secs(16), vec![held])]);
        assert_eq!(
            verdict(Some(&queued), 9, &live, now, ACK_WAIT),
            Verdict::Held
        );
        assert_eq!(
            verdict(Some(&queued), 9, &gone, now, ACK_WAIT),
            Verdict::Suspect
        );
        assert_eq!(
            verdict(None, 9, &HashMap::new(), now, ACK_WAIT),
            Verdict::Suspect
        );
    }

    #[test]
    fn a_final_job_is_a_leftover_only_after_an_ack_wait() {
        let now = Utc::now();
        let fresh = record(Status::Completed, Some("a"), now - secs(1));
        let old = record(Status::Completed, Some("a"), now - secs(31));
        let none = HashMap::new();
        assert_eq!(
            verdict(Some(&fresh), 1, &none, now, ACK_WAIT),
            Verdict::Held
        );
        assert_eq!(
            verdict(Some(&old), 1, &none, now, ACK_WAIT),
            Verdict::Leftover
        );
    }

    fn entry(last_heartbeat: DateTime<Utc>, holding: Vec<Held>) -> NodeEntry {
        NodeEntry::worker("a", last_heartbeat, holding)
    }

    #[test]
    fn a_fresh_entry_listing_the_job_holds_it() {
        let now = Utc::now();
        let id = Uuid::new_v4();
        let held = Held {
            execution_id: id,
            stream_seq: 7,
        };
        let e = entry(now, vec![held]);
        let claimed = Some(now - chrono::Duration::seconds(1));
        assert_eq!(
            holder(Some(&e), &id, claimed, now),
            Holder::Alive { stream_seq: 7 }
        );
    }

    #[test]
    fn a_node_counts_as_holding_until_it_is_silent_too_long() {
        let now = Utc::now();
        let id = Uuid::new_v4();
        let held = Held {
            execution_id: id,
            stream_seq: 7,
        };
        let silent = entry(now - GONE_AFTER, vec![held]);
        let quiet = entry(now - chrono::Duration::seconds(5), vec![held]);
        assert_eq!(
            holder(Some(&quiet), &id, None, now),
            Holder::Alive { stream_seq: 7 }
        );
        assert_eq!(holder(None, &id, Some(now), now), Holder::Gone);
        assert_eq!(holder(Some(&silent), &id, None, now), Holder::Gone);
    }

    #[test]
    fn a_heartbeat_after_the_claim_that_omits_the_job_means_it_was_lost() {
        let now = Utc::now();
        let id = Uuid::new_v4();
        let claimed = now - chrono::Duration::seconds(3);
        let after = entry(now - chrono::Duration::seconds(1), vec![]);
        let before = entry(now - chrono::Duration::seconds(4), vec![]);
        assert_eq!(holder(Some(&after), &id, Some(claimed), now), Holder::Gone);
        assert_eq!(
            holder(Some(&before), &id, Some(claimed), now),
            Holder::Unknown
        );
    }

    #[test]
    fn a_second_delivery_waits_for_the_worker_here_that_holds_the_job() {
        let now = Utc::now();
        let running = record(Status::Running, Some("a"), now);
        let sight = |held_here| Sight {
            record: Some(&running),
            node: "a",
            held_here,
            elsewhere: None,
            stream_seq: 1,
            attempt: 2,
            max_deliver: 3,
        };
        assert_eq!(on_delivery(&sight(true)), Delivered::Recheck);
        assert_eq!(
            on_delivery(&sight(false)),
            Delivered::Claim,
            "its worker died"
        );
        let local = Local::default();
        let ticket = local.register(running.execution_id, ()).unwrap();
        assert!(local.register(running.execution_id, ()).is_none());
        assert_eq!(local.take(&running.execution_id), Some(()));
        assert!(
            local.holds(&running.execution_id),
            "a taken kill switch keeps the entry"
        );
        local.release(ticket);
        assert!(!local.holds(&running.execution_id));
    }

    /// A model of one job's life across nodes: KV with revisions, stream messages, heartbeats
    /// and a clock. Each step runs the same decisions the real worker and rescue do.
    mod interleavings {
        use super::*;
        use proptest::prelude::*;

        const NODES: usize = 3;
        const WORKERS: usize = 2;

        #[derive(Debug, Clone)]
        enum Step {
            Deliver {
                node: usize,
                worker: usize,
                message: usize,
            },
            Heartbeat(usize),
            /// The node is cut off: no more heartbeats, but its workers go on and may finish.
            Silence(usize),
            /// The worker whose delivery said `Claim` registers the job and writes its claim on
            /// what it read then (others may have written since).
            Claim {
                node: usize,
                worker: usize,
            },
            Finish {
                node: usize,
                worker: usize,
            },
            HandBack {
                node: usize,
                worker: usize,
            },
            Rescue,
            Cancel,
            Tick(i64),
        }

        fn step() -> impl Strategy<Value = Step> {
            let n = 0..NODES;
            let w = 0..WORKERS;
            prop_oneof![
                4 => (n.clone(), w.clone(), 0..4usize)
                    .prop_map(|(node, worker, message)| Step::Deliver { node, worker, message }),
                3 => n.clone().prop_map(Step::Heartbeat),
                1 => n.clone().prop_map(Step::Silence),
                3 => (n.clone(), w.clone()).prop_map(|(node, worker)| Step::Claim { node, worker }),
                2 => (n.clone(), w.clone()).prop_map(|(node, worker)| Step::Finish { node, worker }),
                1 => (n, w).prop_map(|(node, worker)| Step::HandBack { node, worker }),
                1 => Just(Step::Rescue),
                1 => Just(Step::Cancel),
                3 => (1..12i64).prop_map(Step::Tick),
            ]
        }

        struct Running {
            ticket: Ticket,
            claim: Claim,
            stream_seq: u64,
        }

        /// A worker between reading the record and claiming it.
        struct Read {
            record: ExecutionRecord,
            revision: u64,
            stream_seq: u64,
        }

        struct Node {
            id: String,
            silent: bool,
            local: Local<()>,
            workers: Vec<Option<Running>>,
            reading: Vec<Option<Read>>,
        }

        struct World {
            now: DateTime<Utc>,
            kv: Option<(ExecutionRecord, u64)>,
            revision: u64,
            messages: Vec<u64>,
            entries: HashMap<String, NodeEntry>,
            nodes: Vec<Node>,
            first_final: Option<ExecutionRecord>,
            last_claimer: Option<String>,
        }

        impl World {
            /// Every node has written its first heartbeat before it takes a job.
            fn new() -> World {
                let now = Utc::now();
                let entries = (0..NODES)
                    .map(|i| node(&format!("n{i}"), now, vec![]))
                    .collect();
                World {
                    now,
                    kv: Some((record(Status::Queued, None, now), 1)),
                    revision: 1,
                    messages: vec![1],
                    entries,
                    nodes: (0..NODES)
                        .map(|i| Node {
                            id: format!("n{i}"),
                            silent: false,
                            local: Local::default(),
                            workers: (0..WORKERS).map(|_| None).collect(),
                            reading: (0..WORKERS).map(|_| None).collect(),
                        })
                        .collect(),
                    first_final: None,
                    last_claimer: None,
                }
            }

            fn id(&self) -> Uuid {
                self.kv.as_ref().unwrap().0.execution_id
            }

            /// KV's compare-and-set.
            fn write(&mut self, record: ExecutionRecord, expect: Expect) -> Option<u64> {
                let current = self.kv.as_ref().map(|(_, r)| *r);
                if Expect::read_at(current) != expect {
                    return None;
                }
                self.revision += 1;
                self.kv = Some((record, self.revision));
                Some(self.revision)
            }

            fn apply(&mut self, step: Step) -> Result<(), TestCaseError> {
                match step {
                    Step::Tick(s) => self.now += chrono::Duration::seconds(s),
                    Step::Silence(n) => self.nodes[n].silent = true,
                    Step::Heartbeat(n) if !self.nodes[n].silent => {
                        let id = self.id();
                        let node = &self.nodes[n];
                        let holding = node
                            .workers
                            .iter()
                            .flatten()
                            .map(|r| Held {
                                execution_id: id,
                                stream_seq: r.stream_seq,
                            })
                            .collect();
                        let entry = NodeEntry::worker(&node.id, self.now, holding);
                        self.entries.insert(node.id.clone(), entry);
                    }
                    Step::Heartbeat(_) => {}
                    Step::Deliver {
                        node,
                        worker,
                        message,
                    } => self.deliver(node, worker, message)?,
                    Step::Claim { node, worker } => self.claim(node, worker)?,
                    Step::Finish { node, worker } => self.finish(node, worker, false)?,
                    Step::HandBack { node, worker } => self.finish(node, worker, true)?,
                    Step::Rescue => {
                        for seq in self.messages.clone() {
                            let record = self.kv.as_ref().map(|(r, _)| r);
                            let ack_wait = Duration::from_secs(30);
                            if verdict(record, seq, &self.entries, self.now, ack_wait)
                                == Verdict::Suspect
                            {
                                self.messages.push(self.messages.iter().max().unwrap() + 1);
                            }
                        }
                        self.messages.truncate(4);
                    }
                    Step::Cancel => {
                        if let Some((r, rev)) =
                            self.kv.clone().filter(|(r, _)| r.status == Status::Queued)
                        {
                            let cancelled = ExecutionRecord {
                                status: Status::Cancelled,
                                ..r
                            };
                            self.write(cancelled, Expect::Revision(rev));
                        }
                    }
                }
                self.check_final_is_final()
            }

            fn deliver(&mut self, n: usize, w: usize, message: usize) -> Result<(), TestCaseError> {
                let Some(&stream_seq) = self.messages.get(message) else {
                    return Ok(());
                };
                if self.nodes[n].workers[w].is_some() {
                    return Ok(());
                }
                let id = self.id();
                let (record, revision) = self.kv.clone().unwrap();
                self.nodes[n].reading[w] = None;
                let me = self.nodes[n].id.clone();
                let elsewhere = (record.status == Status::Running
                    && record.node.as_deref() != Some(&me))
                .then(|| {
                    let holder_id = record.node.clone().unwrap_or_default();
                    holder(
                        self.entries.get(&holder_id),
                        &id,
                        record.started_at,
                        self.now,
                    )
                });
                let sight = Sight {
                    record: Some(&record),
                    node: &me,
                    held_here: self.nodes[n].local.holds(&id),
                    elsewhere,
                    stream_seq,
                    attempt: 1,
                    max_deliver: 3,
                };
                if on_delivery(&sight) != Delivered::Claim {
                    return Ok(());
                }
                // Invariant 5: the worker whose claim this one would replace is on a node gone
                // silent. (A worker whose claim was replaced may still run, on a node that came
                // back; invariant 2 fences its writes.)
                for other in &self.nodes {
                    let current = other
                        .workers
                        .iter()
                        .flatten()
                        .any(|r| r.claim.revision == revision);
                    if current && other.id != me {
                        let gone = self
                            .entries
                            .get(&other.id)
                            .is_none_or(|e| e.is_gone(self.now));
                        prop_assert!(gone, "{} would take the job from live {}", me, other.id);
                    }
                }
                self.nodes[n].reading[w] = Some(Read {
                    record,
                    revision,
                    stream_seq,
                });
                Ok(())
            }

            fn claim(&mut self, n: usize, w: usize) -> Result<(), TestCaseError> {
                let Some(Read {
                    record,
                    revision,
                    stream_seq,
                }) = self.nodes[n].reading[w].take()
                else {
                    return Ok(());
                };
                let (id, me) = (self.id(), self.nodes[n].id.clone());
                let Some(ticket) = self.nodes[n].local.register(id, ()) else {
                    return Ok(());
                };
                let claimed = claim(Some(&record), || unreachable!(), &me, self.now);
                let Some(revision) = self.write(claimed.clone(), Expect::Revision(revision)) else {
                    self.nodes[n].local.release(ticket);
                    return Ok(());
                };
                // Invariant 4: no other worker here runs it.
                for (i, other) in self.nodes.iter().enumerate() {
                    let here = other.workers.iter().flatten().count();
                    prop_assert!(
                        i != n || here == 0,
                        "two workers of {} run the job",
                        other.id
                    );
                }
                self.last_claimer = Some(me);
                self.nodes[n].workers[w] = Some(Running {
                    ticket,
                    claim: Claim {
                        record: claimed,
                        revision,
                    },
                    stream_seq,
                });
                Ok(())
            }

            fn finish(&mut self, n: usize, w: usize, hand_back: bool) -> Result<(), TestCaseError> {
                let Some(running) = self.nodes[n].workers[w].take() else {
                    return Ok(());
                };
                let end = match hand_back {
                    true => running.claim.hand_back(),
                    false => ExecutionRecord {
                        status: Status::Completed,
                        finished_at: Some(self.now),
                        ..running.claim.record.clone()
                    },
                };
                if self.write(end.clone(), running.claim.expect()).is_some() {
                    // Invariant 2: only the latest claimer writes the job's end.
                    prop_assert_eq!(
                        self.last_claimer.as_deref(),
                        Some(self.nodes[n].id.as_str())
                    );
                } else if !hand_back {
                    // (Two hand-backs write the same record; which one landed does not matter.)
                    prop_assert!(!is_own_write(self.kv.as_ref().map(|(r, _)| r), &end));
                }
                self.nodes[n].local.release(running.ticket);
                Ok(())
            }

            /// Invariant 1.
            fn check_final_is_final(&mut self) -> Result<(), TestCaseError> {
                let (record, _) = self.kv.as_ref().unwrap();
                match &self.first_final {
                    Some(first) => prop_assert_eq!(first, record, "a final record changed"),
                    None if record.status.is_final() => self.first_final = Some(record.clone()),
                    None => {}
                }
                Ok(())
            }
        }

        /// The running-map bug: two workers here read the job queued; the one that lost the
        /// claim must not remove the winner's entry, or a later delivery here runs it again.
        #[test]
        fn a_worker_that_loses_the_claim_leaves_the_winners_entry() {
            let mut world = World::new();
            let steps = [
                Step::Deliver {
                    node: 0,
                    worker: 0,
                    message: 0,
                },
                Step::Deliver {
                    node: 0,
                    worker: 1,
                    message: 0,
                },
                Step::Claim { node: 0, worker: 0 },
                Step::Claim { node: 0, worker: 1 },
                Step::Deliver {
                    node: 0,
                    worker: 1,
                    message: 0,
                },
                Step::Claim { node: 0, worker: 1 },
            ];
            for step in steps {
                world.apply(step).unwrap();
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]
            #[test]
            fn the_protocol_keeps_its_invariants(steps in proptest::collection::vec(step(), 1..60)) {
                let mut world = World::new();
                for step in steps {
                    world.apply(step)?;
                }
            }
        }
    }
}
