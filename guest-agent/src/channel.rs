//! The byte stream to the host: a virtio-serial port, stdio (gVisor), or a unix socket (development).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// Reader half.
pub type Reader = Box<dyn Read + Send>;
/// Writer half.
pub type Writer = Box<dyn Write + Send>;

/// Opens `spec`: `virtio:NAME`, `stdio` or `unix:PATH`.
pub fn open(spec: &str) -> io::Result<(Reader, Writer)> {
    if spec == "stdio" {
        return Ok((Box::new(io::stdin()), Box::new(io::stdout())));
    }
    if let Some(path) = spec.strip_prefix("unix:") {
        let s = UnixStream::connect(path)?;
        return Ok((Box::new(s.try_clone()?), Box::new(s)));
    }
    if let Some(name) = spec.strip_prefix("virtio:") {
        let dev = find_virtio_port(name)?;
        let f = OpenOptions::new().read(true).write(true).open(&dev)?;
        return Ok((Box::new(VirtioReader(f.try_clone()?)), Box::new(f)));
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        "expected virtio:NAME, stdio or unix:PATH",
    ))
}

fn find_virtio_port(name: &str) -> io::Result<PathBuf> {
    // The port appears shortly after the driver binds; wait up to 10 s.
    for _ in 0..1000 {
        if let Ok(rd) = fs::read_dir("/sys/class/virtio-ports") {
            for e in rd.flatten() {
                if fs::read_to_string(e.path().join("name")).is_ok_and(|n| n.trim() == name) {
                    return Ok(PathBuf::from("/dev").join(e.file_name()));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("no virtio-serial port named {name}"),
    ))
}

/// A virtio-serial port reads 0 bytes while no host is connected: wait instead of ending.
struct VirtioReader(File);

impl Read for VirtioReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.0.read(buf) {
                Ok(0) => std::thread::sleep(Duration::from_millis(20)),
                other => return other,
            }
        }
    }
}
