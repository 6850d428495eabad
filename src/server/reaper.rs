//! Idle and stalled connections, and shutdown: one *reaper* task watches every connection. A
//! connection counts its reads, writes and requests; the reaper samples the counts four times
//! per idle timeout and asks a connection to close gracefully (every connection, at shutdown)
//! when, for a whole timeout, either
//! - it moved no byte either way (an idle keep-alive connection, a stalled upload), or
//! - no request started, nothing was written and no request was being served (a client
//!   trickling a request head byte by byte to hold a connection: "slowloris"; it is closed at
//!   once rather than gracefully, since hyper would wait for its head to end).
//!
//! A connection serving a request is closed at once only when it moved no byte for two
//! timeouts: a request body that stopped coming.
//!
//! Why not hyper's `header_read_timeout` and a `select!` per connection, as before: the timer
//! made hyper run its connection loop a second time per request and arm a fresh timer each
//! time, and the `select!` over the connection, a shutdown receiver and an idle timer added a
//! clock read per read and write, all on every check. The reaper costs a check a few counter
//! updates.

use super::*;

/// One connection as the reaper sees it.
#[derive(Default)]
pub(super) struct Watch {
    /// Reads that moved bytes so far. Only the connection's task writes it (and `written`).
    read: AtomicU64,
    /// Writes that moved bytes so far.
    written: AtomicU64,
    /// Requests whose head was read, so far. Only the connection's task writes it.
    started: AtomicU64,
    /// Requests being served (HTTP/2 serves several at once, on other tasks).
    in_flight: AtomicU64,
    /// Set by the reaper: [`CLOSE_GRACEFULLY`] or [`CLOSE_NOW`].
    pub(super) close: AtomicU8,
    /// The connection task's waker, kept at its first poll so the reaper can wake it to close.
    /// A task's waker stays valid for the task's life, so it is stored once and the task's
    /// polls touch nothing.
    waker: OnceLock<Waker>,
}

impl Watch {
    #[inline]
    pub(super) fn note_read(&self) {
        bump(&self.read);
    }

    #[inline]
    pub(super) fn note_written(&self) {
        bump(&self.written);
    }

    /// Keeps the connection task's waker for the reaper, at the task's first poll.
    #[inline]
    pub(super) fn keep_waker(&self, cx: &Context<'_>) {
        if self.waker.get().is_none() {
            let _ = self.waker.set(cx.waker().clone());
            // pairs with the fence in `ask_to_close`: the reaper sees the waker or this poll
            // sees the flag
            fence(Ordering::SeqCst);
        }
    }

    /// A request's head was read. Called on the connection's task, as hyper calls the service
    /// there for HTTP/1.1 and HTTP/2 alike.
    #[inline]
    pub(super) fn note_started(&self) {
        bump(&self.started);
    }

    /// Asks the connection to close: `how` is [`CLOSE_GRACEFULLY`] or [`CLOSE_NOW`].
    pub(super) fn ask_to_close(&self, how: u8) {
        self.close.fetch_max(how, Ordering::Release);
        fence(Ordering::SeqCst);
        if let Some(waker) = self.waker.get() {
            waker.wake_by_ref();
        }
    }
}

/// Adds one to a counter only the connection's task writes: no read-modify-write instruction.
#[inline]
pub(super) fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// A request whose route waits, being served: counted in its connection's [`Watch`] until
/// dropped (on whichever task runs it).
pub(super) struct Serving(Arc<Watch>);

impl Serving {
    pub(super) fn start(watch: &Arc<Watch>) -> Serving {
        watch.note_started();
        watch.in_flight.fetch_add(1, Ordering::Relaxed);
        Serving(Arc::clone(watch))
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every open connection's [`Watch`], for the reaper and for shutdown.
#[derive(Default)]
pub(super) struct Watches(Mutex<Vec<WatchedConnection>>);

pub(super) struct WatchedConnection {
    watch: Weak<Watch>,
    /// `read + written` at the reaper's last tick, and for how many ticks in a row it had not
    /// changed.
    seen_moved: u64,
    quiet_ticks: u32,
    /// `written + started` at the last tick, and for how many ticks in a row it had not
    /// changed while no request was being served.
    seen_progress: u64,
    stalled_ticks: u32,
}

/// Ticks per idle timeout: a connection is closed after one to 1.25 idle timeouts of silence.
pub(super) const TICKS_PER_TIMEOUT: u32 = 4;

/// Finish the requests being served, then close (hyper's graceful shutdown).
pub(super) const CLOSE_GRACEFULLY: u8 = 1;
/// Close without waiting: for an idle or stalled connection that serves no request and did not
/// close gracefully within a tick (hyper waits for a request whose head never ends).
pub(super) const CLOSE_NOW: u8 = 2;

impl Watches {
    pub(super) fn add(&self) -> Arc<Watch> {
        let watch = Arc::new(Watch::default());
        let mut watched = self.lock();
        // Closed connections leave at the next tick, or here before the list would grow: many
        // short connections between two ticks keep it within twice the open ones.
        if watched.len() == watched.capacity() {
            watched.retain(|c| c.watch.strong_count() > 0);
        }
        watched.push(WatchedConnection {
            watch: Arc::downgrade(&watch),
            // no count can equal these, so the first tick, however soon after the connection
            // came, only records where it starts: a silent new connection is closed after one
            // to 1.25 idle timeouts, like any other, not after three quarters of one
            seen_moved: u64::MAX,
            quiet_ticks: 0,
            seen_progress: u64::MAX,
            stalled_ticks: 0,
        });
        watch
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Vec<WatchedConnection>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One reaper tick: forgets closed connections and asks those idle or stalled (see the
    /// module doc) for [`TICKS_PER_TIMEOUT`] ticks to close (again at every later tick: asking
    /// is idempotent).
    pub(super) fn tick(&self) {
        self.lock().retain_mut(|c| {
            let Some(watch) = c.watch.upgrade() else {
                return false;
            };
            let written = watch.written.load(Ordering::Relaxed);
            let moved = watch.read.load(Ordering::Relaxed) + written;
            let progress = written + watch.started.load(Ordering::Relaxed);
            let serving = watch.in_flight.load(Ordering::Relaxed) > 0;
            c.quiet_ticks = if moved == c.seen_moved {
                c.quiet_ticks + 1
            } else {
                0
            };
            c.stalled_ticks = if progress == c.seen_progress && !serving {
                c.stalled_ticks + 1
            } else {
                0
            };
            c.seen_moved = moved;
            c.seen_progress = progress;
            let ticks = c.quiet_ticks.max(c.stalled_ticks);
            // a connection that moves bytes but starts no request is trickling a head: it gets
            // no grace (hyper would wait for the head to end), so it is closed within 1.25
            // timeouts like a silent one
            let trickling = c.stalled_ticks >= TICKS_PER_TIMEOUT && c.quiet_ticks < c.stalled_ticks;
            if (ticks > TICKS_PER_TIMEOUT || trickling) && !serving {
                watch.ask_to_close(CLOSE_NOW);
            } else if c.quiet_ticks > 2 * TICKS_PER_TIMEOUT {
                // a request in flight on a connection that moved no byte for two timeouts
                // waits on its client (a body that stopped coming): it is not worth the
                // connection slot and the bytes it holds
                watch.ask_to_close(CLOSE_NOW);
            } else if ticks >= TICKS_PER_TIMEOUT {
                watch.ask_to_close(CLOSE_GRACEFULLY);
            }
            true
        });
    }

    /// Asks every open connection to close gracefully (shutdown).
    pub(super) fn close_all(&self) {
        for c in self.lock().iter() {
            if let Some(watch) = c.watch.upgrade() {
                watch.ask_to_close(CLOSE_GRACEFULLY);
            }
        }
    }
}

/// Closes connections idle for `idle_timeout` (see the module doc). Runs until aborted.
pub(super) async fn reap_idle(watches: Arc<Watches>, idle_timeout: Duration) {
    let period = (idle_timeout / TICKS_PER_TIMEOUT).max(Duration::from_millis(1));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        watches.tick();
    }
}

/// A stream that counts its reads and writes for the reaper.
pub(super) struct Tracked<S> {
    pub(super) inner: S,
    pub(super) watch: Arc<Watch>,
    /// Bytes the direct path read and left to hyper: read before the socket.
    pub(super) unread: Bytes,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.unread.is_empty() {
            // counted as read when the direct path read them
            let n = self.unread.len().min(buf.remaining());
            buf.put_slice(&self.unread.split_to(n));
            if self.unread.is_empty() {
                // let go of the direct path's read buffer
                self.unread = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.watch.note_read();
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.watch.note_written();
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.watch.note_written();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close_of(watch: &Watch) -> u8 {
        watch.close.load(Ordering::Relaxed)
    }

    #[test]
    fn the_reaper_closes_idle_and_stalled_connections_and_spares_busy_ones() {
        let watches = Watches::default();
        let idle = watches.add();
        let trickling = watches.add(); // reads a byte now and then, nothing else
        let serving = watches.add(); // one long request in flight, nothing moving
        let active = watches.add(); // requests and answers every tick
        let _request = Serving::start(&serving);
        watches.tick(); // where each connection starts: no tick counts before it
        assert_eq!(close_of(&idle), 0);
        for tick in 1..=TICKS_PER_TIMEOUT + 1 {
            trickling.note_read();
            let _ = Serving::start(&active);
            active.note_written();
            watches.tick();
            let expected = match tick {
                t if t < TICKS_PER_TIMEOUT => 0,
                t if t == TICKS_PER_TIMEOUT => CLOSE_GRACEFULLY,
                _ => CLOSE_NOW,
            };
            assert_eq!(close_of(&idle), expected, "idle, tick {tick}");
            let trickled = if tick >= TICKS_PER_TIMEOUT {
                CLOSE_NOW
            } else {
                0
            };
            assert_eq!(close_of(&trickling), trickled, "trickling, tick {tick}");
            let graceful = if tick >= TICKS_PER_TIMEOUT {
                CLOSE_GRACEFULLY
            } else {
                0
            };
            assert_eq!(close_of(&serving), graceful, "serving is never cut off");
            assert_eq!(close_of(&active), 0, "active, tick {tick}");
        }
        // unless nothing moved on it for two timeouts: a body that stopped coming
        for _ in TICKS_PER_TIMEOUT + 1..2 * TICKS_PER_TIMEOUT {
            watches.tick();
        }
        assert_eq!(close_of(&serving), CLOSE_GRACEFULLY);
        watches.tick();
        watches.tick();
        assert_eq!(close_of(&serving), CLOSE_NOW);
    }

    #[test]
    fn closed_connections_leave_the_list() {
        let watches = Watches::default();
        let kept = watches.add();
        for _ in 0..100 {
            drop(watches.add());
        }
        assert!(watches.lock().len() <= 2 * 2, "pruned before growing");
        watches.tick();
        assert_eq!(watches.lock().len(), 1);
        watches.close_all();
        assert_eq!(close_of(&kept), CLOSE_GRACEFULLY);
    }
}
