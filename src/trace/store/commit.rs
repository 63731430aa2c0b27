//! Group commit: concurrent writers share one `fdatasync` of the write-ahead log.

use std::{path::Path, sync::Mutex};

use tokio::sync::Notify;

use super::{Durability, TraceStore};
use crate::trace::{error::locked, wal, TraceError};

/// Shared state of group commit (see [`TraceStore::flush`]).
#[derive(Default)]
pub(super) struct GroupCommit {
    state: Mutex<CommitState>,
    done: Notify,
    /// Steps appended, and of those the ones a finished flush covered: a run's next
    /// model call waits for a flush only when some step is not yet covered.
    pub(super) steps_appended: std::sync::atomic::AtomicU64,
    pub(super) steps_synced: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct CommitState {
    /// Tickets handed out: one per write that wants to be durable.
    written: u64,
    /// Every ticket up to this one is on disk.
    flushed: u64,
    /// A flush is running.
    flushing: bool,
    /// Flushes done since the store was opened.
    flushes: u64,
}

impl GroupCommit {
    fn lock(&self, path: &Path) -> Result<std::sync::MutexGuard<'_, CommitState>, TraceError> {
        locked(&self.state, path, "commit state")
    }
}

impl TraceStore {
    /// Make every write made before this call durable. Group commit: a caller whose
    /// write lands while another flush runs waits for the next flush, which one of the
    /// waiters leads, so concurrent writers share fsyncs instead of queueing for one each.
    pub(super) async fn flush(&self) -> Result<(), TraceError> {
        let commit = &self.commit;
        let ticket = {
            let mut s = commit.lock(&self.path)?;
            s.written += 1;
            s.written
        };
        loop {
            let notified = commit.done.notified();
            tokio::pin!(notified);
            // Registered before the state is read, so no wake-up is missed.
            notified.as_mut().enable();
            let target = {
                let mut s = commit.lock(&self.path)?;
                if s.flushed >= ticket {
                    return Ok(());
                }
                if s.flushing {
                    None
                } else {
                    s.flushing = true;
                    Some(s.written)
                }
            };
            let Some(target) = target else {
                notified.await;
                continue;
            };
            let steps = self.commit.steps_appended.load(std::sync::atomic::Ordering::SeqCst);
            let result = self.flush_now();
            if result.is_ok() {
                self.commit.steps_synced.fetch_max(steps, std::sync::atomic::Ordering::SeqCst);
            }
            {
                let mut s = commit.lock(&self.path)?;
                s.flushing = false;
                s.flushes += 1;
                if result.is_ok() {
                    s.flushed = s.flushed.max(target);
                }
            }
            commit.done.notify_waiters();
            result?;
        }
    }

    /// Everything written so far is on disk when this returns (for a store opened with
    /// [`Durability::Periodic`], or before a process exits).
    pub async fn sync(&self) -> Result<(), TraceError> {
        self.flush().await
    }

    /// Disk flushes since the store was opened (group commit shares them among writers).
    pub fn flush_count(&self) -> u64 {
        self.commit.lock(&self.path).map(|s| s.flushes).unwrap_or(0)
    }

    /// One flush, on the calling thread. A flush takes a fraction of a millisecond, and
    /// handing it to a blocking thread costs more CPU in wake-ups than the flush itself
    /// (measured in `benches/pipeline.rs`). Not sled's `flush_async`: in sled 0.34
    /// concurrent `flush_async` futures can miss their wake-up and hang (sled #1241, #1308).
    fn flush_now(&self) -> Result<(), TraceError> {
        self.flush_unchecked().map_err(|e| self.write_error(e))
    }

    fn flush_unchecked(&self) -> Result<(), TraceError> {
        let Some(log) = &self.wal else { return self.flush_sled() };
        log.sync().map_err(|e| self.wal_err(log.path(), e))?;
        if log.len() > wal::CHECKPOINT_BYTES {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// With [`Durability::EveryStep`], make every step appended so far durable (a
    /// no-op when a flush already covered them). Called before each model call.
    pub async fn sync_steps(&self) -> Result<(), TraceError> {
        use std::sync::atomic::Ordering::SeqCst;
        let pending = self.commit.steps_synced.load(SeqCst) < self.commit.steps_appended.load(SeqCst);
        if self.durability == Durability::EveryStep && pending {
            self.flush().await?;
        }
        Ok(())
    }
}
