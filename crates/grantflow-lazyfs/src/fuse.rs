//! The FUSE side: each request is one call on the shared [`State`]. Entries and attributes are
//! given with a zero TTL and every open file uses direct I/O, so the kernel caches nothing: each
//! read, write and lookup reaches the model.

use std::ffi::OsStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::model::{Body, Inode, State, PAGE};

const TTL: Duration = Duration::ZERO;

pub struct LazyFuse {
    pub state: Arc<Mutex<State>>,
}

fn errno(code: i32) -> Errno {
    Errno::from_i32(code)
}

fn attr(ino: u64, inode: &Inode) -> FileAttr {
    let (kind, size, nlink) = match &inode.body {
        Body::File(file) => (FileType::RegularFile, file.current.size(), 1),
        Body::Dir(_) => (FileType::Directory, 0, 2),
    };
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: inode.atime,
        mtime: inode.mtime,
        ctime: inode.ctime,
        crtime: inode.ctime,
        kind,
        perm: u16::try_from(inode.mode & 0o7777).unwrap_or(0o644),
        nlink,
        uid: inode.uid,
        gid: inode.gid,
        rdev: 0,
        blksize: u32::try_from(PAGE).unwrap_or(4096),
        flags: 0,
    }
}

fn time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

impl LazyFuse {
    /// The state, or EIO once a cut has happened (the machine has no power).
    fn live(&self) -> Result<MutexGuard<'_, State>, Errno> {
        let state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.dead {
            return Err(Errno::EIO);
        }
        Ok(state)
    }

    fn entry(&self, reply: ReplyEntry, result: impl FnOnce(&mut State) -> Result<u64, i32>) {
        let mut state = match self.live() {
            Ok(state) => state,
            Err(e) => return reply.error(e),
        };
        match result(&mut state) {
            Ok(ino) => match state.inodes.get(&ino) {
                Some(inode) => reply.entry(&TTL, &attr(ino, inode), Generation(0)),
                None => reply.error(Errno::ENOENT),
            },
            Err(code) => reply.error(errno(code)),
        }
    }

    fn empty(&self, reply: ReplyEmpty, result: impl FnOnce(&mut State) -> Result<(), i32>) {
        match self.live() {
            Ok(mut state) => match result(&mut state) {
                Ok(()) => reply.ok(),
                Err(code) => reply.error(errno(code)),
            },
            Err(e) => reply.error(e),
        }
    }
}

impl Filesystem for LazyFuse {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.entry(reply, |state| state.lookup(parent.0, name));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let state = match self.live() {
            Ok(state) => state,
            Err(e) => return reply.error(e),
        };
        match state.inodes.get(&ino.0) {
            Some(inode) => reply.attr(&TTL, &attr(ino.0, inode)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut state = match self.live() {
            Ok(state) => state,
            Err(e) => return reply.error(e),
        };
        if let Some(size) = size {
            if let Err(code) = state.set_size(ino.0, size) {
                return reply.error(errno(code));
            }
        }
        let Some(inode) = state.inodes.get_mut(&ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        if let Some(mode) = mode {
            inode.mode = mode & 0o7777;
        }
        if let Some(uid) = uid {
            inode.uid = uid;
        }
        if let Some(gid) = gid {
            inode.gid = gid;
        }
        if let Some(t) = atime {
            inode.atime = time(t);
        }
        if let Some(t) = mtime {
            inode.mtime = time(t);
        }
        inode.ctime = SystemTime::now();
        reply.attr(&TTL, &attr(ino.0, inode));
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::EPERM);
        }
        let (uid, gid) = (req.uid(), req.gid());
        self.entry(reply, |state| {
            state.create(parent.0, name, false, mode & !umask, uid, gid)
        });
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let (uid, gid) = (req.uid(), req.gid());
        self.entry(reply, |state| {
            state.create(parent.0, name, true, mode & !umask, uid, gid)
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.empty(reply, |state| state.remove(parent.0, name, false));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.empty(reply, |state| state.remove(parent.0, name, true));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.contains(RenameFlags::RENAME_EXCHANGE)
            || flags.contains(RenameFlags::RENAME_WHITEOUT)
        {
            return reply.error(Errno::EINVAL);
        }
        let no_replace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        self.empty(reply, |state| {
            state.rename(parent.0, name, newparent.0, newname, no_replace)
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.live() {
            Ok(state) if state.inodes.contains_key(&ino.0) => {
                reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO)
            }
            Ok(_) => reply.error(Errno::ENOENT),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut state = match self.live() {
            Ok(state) => state,
            Err(e) => return reply.error(e),
        };
        match state.file_mut(ino.0) {
            Ok(file) => reply.data(&file.current.read(offset, u64::from(size))),
            Err(code) => reply.error(errno(code)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut state = match self.live() {
            Ok(state) => state,
            Err(e) => return reply.error(e),
        };
        match state.write(ino.0, offset, data) {
            Ok(()) => reply.written(u32::try_from(data.len()).unwrap_or(u32::MAX)),
            Err(code) => reply.error(errno(code)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) makes nothing durable.
        self.empty(reply, |_| Ok(()));
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |state| state.fsync(ino.0));
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let state = match self.live() {
            Ok(state) => state,
            Err(e) => return reply.error(e),
        };
        let Some(dir) = state.dir(ino.0) else {
            return reply.error(Errno::ENOTDIR);
        };
        let mut entries = vec![
            (ino.0, FileType::Directory, OsStr::new(".")),
            (dir.parent, FileType::Directory, OsStr::new("..")),
        ];
        for (name, child) in &dir.current {
            let kind = if state.inodes.get(child).is_some_and(Inode::is_dir) {
                FileType::Directory
            } else {
                FileType::RegularFile
            };
            entries.push((*child, kind, name.as_os_str()));
        }
        for (index, (child, kind, name)) in entries
            .into_iter()
            .enumerate()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        {
            if reply.add(INodeNo(child), index as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |state| state.fsync(ino.0));
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Plenty of room: the model lives in memory.
        let blocks = 1u64 << 28;
        let bsize = u32::try_from(PAGE).unwrap_or(4096);
        reply.statfs(blocks, blocks, blocks, 1 << 24, 1 << 24, bsize, 255, bsize);
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        self.empty(reply, |state| {
            if state.inodes.contains_key(&ino.0) {
                Ok(())
            } else {
                Err(libc::ENOENT)
            }
        });
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut state = match self.live() {
            Ok(state) => state,
            Err(e) => return reply.error(e),
        };
        match state.create(parent.0, name, false, mode & !umask, req.uid(), req.gid()) {
            Ok(ino) => match state.inodes.get(&ino) {
                Some(inode) => reply.created(
                    &TTL,
                    &attr(ino, inode),
                    Generation(0),
                    FileHandle(0),
                    FopenFlags::FOPEN_DIRECT_IO,
                ),
                None => reply.error(Errno::ENOENT),
            },
            Err(code) => reply.error(errno(code)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let keep_size = mode & libc::FALLOC_FL_KEEP_SIZE != 0;
        let zero = mode & (libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE) != 0;
        let known =
            libc::FALLOC_FL_KEEP_SIZE | libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE;
        if mode & !known != 0 {
            return reply.error(errno(libc::EOPNOTSUPP));
        }
        self.empty(reply, |state| {
            state.allocate(ino.0, offset, length, zero, keep_size)
        });
    }
}
