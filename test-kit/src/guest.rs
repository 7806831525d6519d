//! A fake guest agent: answers every request of the real guest protocol at once, records what the
//! host asked, reports the host's egress stream traffic and lets a test write guest frames.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{mpsc, Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use airlock_domain::Screen;
use airlock_protocol::{
    encode_frame, ErrorKind, ExecResult, FrameDecoder, FrameError, GuestMessage, HostMessage, Input, Pixels,
    Reply, Request, StreamMessage, WindowInfo, PROTOCOL_VERSION,
};

/// How the fake guest answers.
#[derive(Debug, Clone)]
pub struct Answers {
    /// Its screen.
    pub screen: Screen,
    /// The byte every screenshot pixel channel holds (a flat screen).
    pub fill: u8,
    /// The window under any point and with the keyboard focus.
    pub window: WindowInfo,
    /// The agent version it says hello with.
    pub agent_version: String,
    /// Whether it keeps every request for [`FakeGuest::requests`] (a benchmark's long run does
    /// not, so it does not grow).
    pub record: bool,
}

impl Answers {
    /// A black `screen`, one window that is not a terminal, agent version `fake`, every request
    /// recorded.
    pub fn new(screen: Screen) -> Answers {
        Answers {
            screen,
            fill: 0,
            window: WindowInfo {
                id: 1,
                title: "fake window".into(),
                class: "FakeApp".into(),
                instance: "fakeapp".into(),
            },
            agent_version: "fake".into(),
            record: true,
        }
    }

    /// The reply to `req`: hello, pong, a flat screenshot, inputs done (the pointer at (1, 1)),
    /// a successful exec with no output, the window, an empty selection; a frame stream ends at
    /// once; egress attaches; file transfers are refused as unsupported.
    pub fn reply(&self, req: &Request) -> Reply {
        let Screen { width, height } = self.screen;
        match req {
            Request::Hello { .. } => Reply::Hello {
                protocol: PROTOCOL_VERSION,
                agent_version: self.agent_version.clone(),
                screen_w: width,
                screen_h: height,
            },
            Request::Ping => Reply::Pong,
            Request::Screenshot => {
                let px = vec![self.fill; usize::from(width) * usize::from(height) * 4];
                Reply::Screenshot(Pixels::compress(0, 0, width, height, &px))
            }
            Request::Input(Input::QueryPointer) => Reply::Pointer { x: 1, y: 1 },
            Request::Input(_) => Reply::Done,
            Request::Exec(_) => Reply::Exec(ExecResult {
                exit_code: Some(0),
                signal: None,
                timed_out: false,
                stdout: Vec::new(),
                stderr: Vec::new(),
                stdout_truncated: false,
                stderr_truncated: false,
                duration_ms: 0,
            }),
            Request::StartFrames { .. } => Reply::StreamEnded,
            Request::AttachEgress => Reply::Done,
            Request::Window { .. } => Reply::Window(self.window.clone()),
            Request::Selection { .. } => Reply::Selection {
                text: String::new(),
                truncated: false,
            },
            Request::PutFile(_) | Request::GetPath { .. } | Request::ListDir { .. } => Reply::Error {
                kind: ErrorKind::Unavailable,
                message: "the fake guest does not support file transfers".into(),
            },
        }
    }
}

/// Whether the fake guest reads its channel; stopping it makes the host's writes back up.
#[derive(Debug, Clone, Default)]
pub struct Reading(Arc<(Mutex<bool>, Condvar)>);

impl Reading {
    /// The guest stops reading (after the read in progress).
    pub fn stop(&self) {
        self.set(true);
    }

    /// The guest reads again.
    pub fn resume(&self) {
        self.set(false);
    }

    fn set(&self, stopped: bool) {
        let (lock, cv) = &*self.0;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = stopped;
        cv.notify_all();
    }

    /// Blocks while reading is stopped.
    fn wait_while_stopped(&self) {
        let (lock, cv) = &*self.0;
        let stopped = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let _unused = cv
            .wait_while(stopped, |s| *s)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

/// The fake guest could not send a frame to the host.
#[derive(Debug, thiserror::Error)]
pub enum GuestWriteError {
    /// The frame does not encode.
    #[error("the fake guest cannot encode the frame")]
    Encode(#[from] FrameError),
    /// The host end is gone or the write failed.
    #[error("the fake guest cannot write to the host")]
    Write(#[from] std::io::Error),
}

/// A fake guest agent on one end of a Unix socket pair; the host end goes to
/// [`GuestClient::over_unix`](airlock_sandbox::GuestClient::over_unix).
#[derive(Debug)]
pub struct FakeGuest {
    out: Arc<Mutex<UnixStream>>,
    from_host: mpsc::Receiver<(u32, StreamMessage)>,
    requests: Arc<Mutex<Vec<Request>>>,
    reading: Reading,
}

impl FakeGuest {
    /// Starts a guest answering as `answers` says, on a thread; returns it and the host's end.
    /// Every request is recorded before it is answered, so once a host call returned the guest
    /// has seen it.
    pub fn start(answers: Answers) -> std::io::Result<(FakeGuest, UnixStream)> {
        let (host, guest) = UnixStream::pair()?;
        let out = Arc::new(Mutex::new(guest.try_clone()?));
        let (to_test, from_host) = mpsc::channel();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let reading = Reading::default();
        let serve = Serve {
            answers,
            reader: guest,
            writer: out.clone(),
            to_test,
            requests: requests.clone(),
            reading: reading.clone(),
        };
        std::thread::spawn(move || serve.run());
        Ok((
            FakeGuest {
                out,
                from_host,
                requests,
                reading,
            },
            host,
        ))
    }

    /// Writes a guest stream frame (egress traffic) to the host.
    pub fn send(&self, id: u32, msg: StreamMessage) -> Result<(), GuestWriteError> {
        let bytes = encode_frame(id, &GuestMessage::Stream(msg))?;
        self.out
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write_all(&bytes)?;
        Ok(())
    }

    /// The host's stream messages, collected until `done` says enough or `timeout` passed.
    pub fn collect(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[(u32, StreamMessage)]) -> bool,
    ) -> Vec<(u32, StreamMessage)> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        while !done(&got) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.from_host.recv_timeout(left) {
                Ok(m) => got.push(m),
                Err(_) => break,
            }
        }
        got
    }

    /// Every request the host sent, in order (none unless [`Answers::record`]).
    pub fn requests(&self) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The requests that act on the sandbox: inputs (other than asking where the pointer is) and
    /// programs run.
    pub fn actions_seen(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| match r {
                Request::Input(Input::QueryPointer) => false,
                Request::Input(_) | Request::Exec(_) | Request::PutFile(_) => true,
                Request::Hello { .. }
                | Request::Ping
                | Request::Screenshot
                | Request::StartFrames { .. }
                | Request::Window { .. }
                | Request::Selection { .. }
                | Request::AttachEgress
                | Request::GetPath { .. }
                | Request::ListDir { .. } => false,
            })
            .collect()
    }

    /// Switches the guest's reading of its channel.
    pub fn reading(&self) -> Reading {
        self.reading.clone()
    }
}

/// The guest's side of the channel, run on its own thread.
struct Serve {
    answers: Answers,
    reader: UnixStream,
    writer: Arc<Mutex<UnixStream>>,
    to_test: mpsc::Sender<(u32, StreamMessage)>,
    requests: Arc<Mutex<Vec<Request>>>,
    reading: Reading,
}

impl Serve {
    fn run(mut self) {
        let mut dec = FrameDecoder::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            self.reading.wait_while_stopped();
            let n = match self.reader.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            dec.extend(&buf[..n]);
            while let Ok(Some(frame)) = dec.next_frame() {
                let Ok(msg) = frame.decode::<HostMessage>() else {
                    return;
                };
                let req = match msg {
                    HostMessage::Stream(m) => {
                        let _ = self.to_test.send((frame.id, m));
                        continue;
                    }
                    HostMessage::Cancel | HostMessage::Transfer(_) => continue,
                    HostMessage::Request(req) => req,
                };
                let reply = self.answers.reply(&req);
                if self.answers.record {
                    self.requests
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(req);
                }
                let Ok(bytes) = encode_frame(frame.id, &GuestMessage::Reply(reply)) else {
                    return;
                };
                let mut w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
                if w.write_all(&bytes).is_err() {
                    return;
                }
            }
        }
    }
}
