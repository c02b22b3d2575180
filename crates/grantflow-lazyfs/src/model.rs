//! The in-memory model behind the mount: inodes with a current and a durable view (see the
//! crate's documentation for the rules), loaded from the backing directory at mount and written
//! back to it at a cut (the durable view) or at an unmount (the current view).

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::{CutReport, RolledBack, TornWrite};

/// The granularity of torn writes and of the in-memory file pages.
pub const PAGE: u64 = 4096;
const PAGE_USIZE: usize = 4096;

type Page = Arc<[u8; PAGE_USIZE]>;

/// A file's bytes: 4 KiB pages shared between the views (copy on write), a missing page reads
/// as zeros, so a preallocated or extended file costs nothing until written.
#[derive(Clone, Default)]
pub struct Data {
    pages: BTreeMap<u64, Page>,
    size: u64,
}

/// Equal bytes, whether a page of zeros is stored or missing.
impl PartialEq for Data {
    fn eq(&self, other: &Data) -> bool {
        const ZEROS: [u8; PAGE_USIZE] = [0; PAGE_USIZE];
        let page = |data: &Data, index: &u64| -> [u8; PAGE_USIZE] {
            data.pages.get(index).map_or(ZEROS, |p| **p)
        };
        self.size == other.size
            && self
                .pages
                .keys()
                .chain(other.pages.keys())
                .all(|index| page(self, index) == page(other, index))
    }
}

impl Eq for Data {}

impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Data")
            .field("size", &self.size)
            .field("pages", &self.pages.len())
            .finish()
    }
}

impl Data {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Up to `len` bytes from `offset` (fewer at the end of the file).
    pub fn read(&self, offset: u64, len: u64) -> Vec<u8> {
        let end = offset.saturating_add(len).min(self.size);
        if offset >= end {
            return Vec::new();
        }
        let mut out = vec![0u8; usize::try_from(end - offset).unwrap_or(usize::MAX)];
        let mut pos = offset;
        while pos < end {
            let index = pos / PAGE;
            let within = pos % PAGE;
            let take = (PAGE - within).min(end - pos);
            if let Some(page) = self.pages.get(&index) {
                let at = to_usize(pos - offset);
                let from = to_usize(within);
                out[at..at + to_usize(take)].copy_from_slice(&page[from..from + to_usize(take)]);
            }
            pos += take;
        }
        out
    }

    /// Writes `bytes` at `offset`, extending the file if needed.
    pub fn write(&mut self, offset: u64, bytes: &[u8]) {
        let mut pos = offset;
        let mut rest = bytes;
        while !rest.is_empty() {
            let index = pos / PAGE;
            let within = to_usize(pos % PAGE);
            let take = (PAGE_USIZE - within).min(rest.len());
            let chunk = &rest[..take];
            match self.pages.get_mut(&index) {
                Some(page) => Arc::make_mut(page)[within..within + take].copy_from_slice(chunk),
                // Zeros over a missing page (a preallocation by writing zeros) store nothing.
                None if chunk.iter().all(|b| *b == 0) => {}
                None => {
                    let mut page = [0u8; PAGE_USIZE];
                    page[within..within + take].copy_from_slice(chunk);
                    self.pages.insert(index, Arc::new(page));
                }
            }
            rest = &rest[take..];
            pos += take as u64;
        }
        self.size = self.size.max(offset + bytes.len() as u64);
    }

    /// Zeros `len` bytes from `offset` without changing the size.
    pub fn zero(&mut self, offset: u64, len: u64) {
        let end = offset.saturating_add(len).min(self.size);
        let mut pos = offset;
        while pos < end {
            let index = pos / PAGE;
            let within = pos % PAGE;
            let take = (PAGE - within).min(end - pos);
            if take == PAGE {
                self.pages.remove(&index);
            } else if let Some(page) = self.pages.get_mut(&index) {
                let from = to_usize(within);
                Arc::make_mut(page)[from..from + to_usize(take)].fill(0);
            }
            pos += take;
        }
    }

    /// Sets the size: bytes past it are dropped, new bytes read as zeros.
    pub fn set_size(&mut self, size: u64) {
        if size < self.size {
            let old = self.size;
            self.zero(size, old - size);
            let first_gone = size.div_ceil(PAGE);
            self.pages.retain(|index, _| *index < first_gone);
        }
        self.size = size;
    }

    fn load(path: &Path) -> io::Result<Data> {
        let mut file = fs::File::open(path)?;
        let mut data = Data::default();
        let mut page = [0u8; PAGE_USIZE];
        let mut offset = 0u64;
        loop {
            let mut filled = 0;
            while filled < PAGE_USIZE {
                let n = file.read(&mut page[filled..])?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                break;
            }
            if page[..filled].iter().any(|b| *b != 0) {
                data.write(offset, &page[..filled]);
            }
            offset += filled as u64;
            data.size = offset;
            if filled < PAGE_USIZE {
                break;
            }
        }
        Ok(data)
    }

    fn store(&self, path: &Path, mode: u32) -> io::Result<()> {
        let mut file = fs::File::create(path)?;
        file.set_len(self.size)?;
        for (index, page) in &self.pages {
            let start = index * PAGE;
            let len = PAGE.min(self.size.saturating_sub(start));
            file.write_all_at(&page[..to_usize(len)], start)?;
        }
        file.flush()?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.sync_all()
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// A regular file: what reads see, what a cut keeps, and what a torn write may add to it.
#[derive(Debug, Clone)]
pub struct FileNode {
    pub current: Data,
    pub durable: Data,
    /// The offset and length of the last write since the last fsync, if no size change came
    /// after it (the current data holds its bytes).
    pub last_write: Option<(u64, u64)>,
}

#[derive(Debug, Clone)]
pub struct DirNode {
    pub current: BTreeMap<OsString, u64>,
    pub durable: BTreeMap<OsString, u64>,
    /// The directory this one is in now (for `..`).
    pub parent: u64,
}

#[derive(Debug, Clone)]
pub enum Body {
    File(FileNode),
    Dir(DirNode),
}

#[derive(Debug, Clone)]
pub struct Inode {
    pub body: Body,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
}

impl Inode {
    fn new(body: Body, mode: u32, uid: u32, gid: u32) -> Inode {
        let now = SystemTime::now();
        Inode {
            body,
            mode: mode & 0o7777,
            uid,
            gid,
            atime: now,
            mtime: now,
            ctime: now,
        }
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.body, Body::Dir(_))
    }
}

/// An error as the file system answers it (an errno).
pub type Errno = i32;

/// The whole file system.
#[derive(Debug)]
pub struct State {
    pub inodes: BTreeMap<u64, Inode>,
    next_ino: u64,
    pub strict: bool,
    /// Set by a cut: from then on every operation fails (EIO), as on a machine without power.
    pub dead: bool,
}

pub const ROOT: u64 = 1;

/// One entry of a view (current or durable), by path relative to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Dir { ino: u64, mode: u32 },
    File { ino: u64, mode: u32, data: Data },
}

impl Entry {
    fn ino(&self) -> u64 {
        match self {
            Entry::Dir { ino, .. } | Entry::File { ino, .. } => *ino,
        }
    }
}

type View = BTreeMap<PathBuf, Entry>;

impl State {
    /// Loads the backing directory: everything in it is durable.
    pub fn load(backing: &Path, strict: bool) -> io::Result<State> {
        let meta = fs::metadata(backing)?;
        if !meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", backing.display()),
            ));
        }
        let mut state = State {
            inodes: BTreeMap::new(),
            next_ino: ROOT + 1,
            strict,
            dead: false,
        };
        let root = Inode::new(
            Body::Dir(DirNode {
                current: BTreeMap::new(),
                durable: BTreeMap::new(),
                parent: ROOT,
            }),
            meta.mode(),
            meta.uid(),
            meta.gid(),
        );
        state.inodes.insert(ROOT, root);
        state.load_dir(backing, ROOT)?;
        Ok(state)
    }

    fn load_dir(&mut self, dir: &Path, dir_ino: u64) -> io::Result<()> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            names.push(entry?.file_name());
        }
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let meta = fs::symlink_metadata(&path)?;
            let ino = if meta.is_dir() {
                let ino = self.add(Inode::new(
                    Body::Dir(DirNode {
                        current: BTreeMap::new(),
                        durable: BTreeMap::new(),
                        parent: dir_ino,
                    }),
                    meta.mode(),
                    meta.uid(),
                    meta.gid(),
                ));
                self.load_dir(&path, ino)?;
                ino
            } else if meta.is_file() {
                let data = Data::load(&path)?;
                self.add(Inode::new(
                    Body::File(FileNode {
                        current: data.clone(),
                        durable: data,
                        last_write: None,
                    }),
                    meta.mode(),
                    meta.uid(),
                    meta.gid(),
                ))
            } else {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!(
                        "{}: only regular files and directories are supported",
                        path.display()
                    ),
                ));
            };
            let parent = self
                .dir_mut(dir_ino)
                .ok_or_else(|| io::Error::other("no parent"))?;
            parent.current.insert(name.clone(), ino);
            parent.durable.insert(name, ino);
        }
        Ok(())
    }

    fn add(&mut self, inode: Inode) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(ino, inode);
        ino
    }

    pub fn dir(&self, ino: u64) -> Option<&DirNode> {
        match &self.inodes.get(&ino)?.body {
            Body::Dir(dir) => Some(dir),
            Body::File(_) => None,
        }
    }

    fn dir_mut(&mut self, ino: u64) -> Option<&mut DirNode> {
        match &mut self.inodes.get_mut(&ino)?.body {
            Body::Dir(dir) => Some(dir),
            Body::File(_) => None,
        }
    }

    pub fn file_mut(&mut self, ino: u64) -> Result<&mut FileNode, Errno> {
        match &mut self.inodes.get_mut(&ino).ok_or(libc::ENOENT)?.body {
            Body::File(file) => Ok(file),
            Body::Dir(_) => Err(libc::EISDIR),
        }
    }

    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        let dir = self.dir(parent).ok_or(libc::ENOTDIR)?;
        dir.current.get(name).copied().ok_or(libc::ENOENT)
    }

    /// In non-strict mode a directory's entries are durable as soon as they change.
    fn entries_changed(&mut self, dir: u64) {
        if !self.strict {
            if let Some(dir) = self.dir_mut(dir) {
                dir.durable = dir.current.clone();
            }
        }
        if let Some(inode) = self.inodes.get_mut(&dir) {
            let now = SystemTime::now();
            inode.mtime = now;
            inode.ctime = now;
        }
    }

    /// Creates a file or directory `name` in `parent` (EEXIST if the name is taken).
    pub fn create(
        &mut self,
        parent: u64,
        name: &OsStr,
        dir: bool,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<u64, Errno> {
        let entries = &self.dir(parent).ok_or(libc::ENOTDIR)?.current;
        if entries.contains_key(name) {
            return Err(libc::EEXIST);
        }
        let body = if dir {
            Body::Dir(DirNode {
                current: BTreeMap::new(),
                durable: BTreeMap::new(),
                parent,
            })
        } else {
            Body::File(FileNode {
                current: Data::default(),
                durable: Data::default(),
                last_write: None,
            })
        };
        let ino = self.add(Inode::new(body, mode, uid, gid));
        self.dir_mut(parent)
            .ok_or(libc::ENOTDIR)?
            .current
            .insert(name.to_os_string(), ino);
        self.entries_changed(parent);
        Ok(ino)
    }

    /// unlink (`dir == false`) or rmdir (`dir == true`).
    pub fn remove(&mut self, parent: u64, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        match (&self.inodes.get(&ino).ok_or(libc::ENOENT)?.body, dir) {
            (Body::Dir(_), false) => return Err(libc::EISDIR),
            (Body::File(_), true) => return Err(libc::ENOTDIR),
            (Body::Dir(d), true) if !d.current.is_empty() => return Err(libc::ENOTEMPTY),
            _ => {}
        }
        self.dir_mut(parent)
            .ok_or(libc::ENOTDIR)?
            .current
            .remove(name);
        self.entries_changed(parent);
        Ok(())
    }

    pub fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        no_replace: bool,
    ) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        self.dir(new_parent).ok_or(libc::ENOTDIR)?;
        let moving_dir = self.inodes.get(&ino).is_some_and(Inode::is_dir);
        if moving_dir {
            // A directory cannot move into itself or below itself.
            let mut at = new_parent;
            loop {
                if at == ino {
                    return Err(libc::EINVAL);
                }
                let up = self.dir(at).map_or(ROOT, |d| d.parent);
                if at == ROOT || up == at {
                    break;
                }
                at = up;
            }
        }
        if let Ok(target) = self.lookup(new_parent, new_name) {
            if target == ino {
                return Ok(());
            }
            if no_replace {
                return Err(libc::EEXIST);
            }
            match &self.inodes.get(&target).ok_or(libc::ENOENT)?.body {
                Body::Dir(_) if !moving_dir => return Err(libc::EISDIR),
                Body::Dir(d) if !d.current.is_empty() => return Err(libc::ENOTEMPTY),
                Body::File(_) if moving_dir => return Err(libc::ENOTDIR),
                _ => {}
            }
        }
        self.dir_mut(parent)
            .ok_or(libc::ENOTDIR)?
            .current
            .remove(name);
        self.dir_mut(new_parent)
            .ok_or(libc::ENOTDIR)?
            .current
            .insert(new_name.to_os_string(), ino);
        if let Some(Body::Dir(d)) = self.inodes.get_mut(&ino).map(|i| &mut i.body) {
            d.parent = new_parent;
        }
        self.entries_changed(parent);
        self.entries_changed(new_parent);
        Ok(())
    }

    pub fn write(&mut self, ino: u64, offset: u64, bytes: &[u8]) -> Result<(), Errno> {
        let file = self.file_mut(ino)?;
        file.current.write(offset, bytes);
        file.last_write = Some((offset, bytes.len() as u64));
        self.touch(ino);
        Ok(())
    }

    pub fn set_size(&mut self, ino: u64, size: u64) -> Result<(), Errno> {
        let file = self.file_mut(ino)?;
        if file.current.size() != size {
            file.current.set_size(size);
            file.last_write = None;
        }
        self.touch(ino);
        Ok(())
    }

    /// fallocate: `zero` zeros the range (punch hole, zero range); `keep_size` leaves the size.
    pub fn allocate(
        &mut self,
        ino: u64,
        offset: u64,
        len: u64,
        zero: bool,
        keep_size: bool,
    ) -> Result<(), Errno> {
        let file = self.file_mut(ino)?;
        let before = file.current.clone();
        if zero {
            file.current.zero(offset, len);
        }
        let end = offset.saturating_add(len);
        if !keep_size && end > file.current.size() {
            file.current.set_size(end);
        }
        if file.current != before {
            file.last_write = None;
        }
        self.touch(ino);
        Ok(())
    }

    fn touch(&mut self, ino: u64) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            let now = SystemTime::now();
            inode.mtime = now;
            inode.ctime = now;
        }
    }

    /// fsync or fdatasync of a file (its data and size) or of a directory (its entries).
    pub fn fsync(&mut self, ino: u64) -> Result<(), Errno> {
        match &mut self.inodes.get_mut(&ino).ok_or(libc::ENOENT)?.body {
            Body::File(file) => {
                file.durable = file.current.clone();
                file.last_write = None;
            }
            Body::Dir(dir) => dir.durable = dir.current.clone(),
        }
        Ok(())
    }

    /// Everything becomes durable (as `sync(2)` on a file system that keeps its word).
    pub fn sync_all(&mut self) {
        let inos: Vec<u64> = self.inodes.keys().copied().collect();
        for ino in inos {
            let _ = self.fsync(ino);
        }
    }

    fn view(
        &self,
        durable: bool,
        torn: Option<(u64, &mut Vec<TornWrite>)>,
    ) -> (View, Vec<PathBuf>) {
        let mut view = View::new();
        let mut loops = Vec::new();
        let mut torn = torn;
        let mut stack: Vec<(u64, PathBuf, Vec<u64>)> = vec![(ROOT, PathBuf::new(), vec![ROOT])];
        while let Some((dir_ino, dir_path, ancestors)) = stack.pop() {
            let Some(dir) = self.dir(dir_ino) else {
                continue;
            };
            let entries = if durable { &dir.durable } else { &dir.current };
            for (name, ino) in entries {
                let path = dir_path.join(name);
                let Some(inode) = self.inodes.get(ino) else {
                    continue;
                };
                match &inode.body {
                    Body::Dir(_) => {
                        if ancestors.contains(ino) {
                            // Only a durable view of half-durable directory renames can loop.
                            loops.push(path);
                            continue;
                        }
                        view.insert(
                            path.clone(),
                            Entry::Dir {
                                ino: *ino,
                                mode: inode.mode,
                            },
                        );
                        let mut below = ancestors.clone();
                        below.push(*ino);
                        stack.push((*ino, path, below));
                    }
                    Body::File(file) => {
                        let mut data = if durable {
                            file.durable.clone()
                        } else {
                            file.current.clone()
                        };
                        if let (Some((seed, torn)), Some((offset, len))) =
                            (torn.as_mut(), file.last_write)
                        {
                            let kept = torn_prefix(*seed, &path, offset, len);
                            if kept > 0 {
                                data = with_torn_pages(data, &file.current, offset, kept);
                            }
                            torn.push(TornWrite {
                                path: path.clone(),
                                offset,
                                len,
                                kept,
                            });
                        }
                        view.insert(
                            path,
                            Entry::File {
                                ino: *ino,
                                mode: inode.mode,
                                data,
                            },
                        );
                    }
                }
            }
        }
        (view, loops)
    }

    /// The state a power cut leaves, written to `backing`, and what it lost. The state is dead
    /// afterwards.
    pub fn cut(&mut self, backing: &Path, torn_seed: Option<u64>) -> io::Result<CutReport> {
        self.dead = true;
        let (current, _) = self.view(false, None);
        let mut torn = Vec::new();
        let (durable, loops) = match torn_seed {
            Some(seed) => self.view(true, Some((seed, &mut torn))),
            None => self.view(true, None),
        };
        let mut report = CutReport {
            torn_writes: torn,
            directory_loops: loops,
            ..CutReport::default()
        };
        for (path, entry) in &current {
            match durable.get(path) {
                None => report.vanished.push(path.clone()),
                Some(kept) if kept.ino() != entry.ino() => report.replaced.push(path.clone()),
                Some(Entry::File { data: kept, .. }) => {
                    if let Entry::File { data, .. } = entry {
                        if kept != data {
                            report.rolled_back.push(RolledBack {
                                path: path.clone(),
                                len: data.size(),
                                kept_len: kept.size(),
                            });
                        }
                    }
                }
                Some(Entry::Dir { .. }) => {}
            }
        }
        report.restored = durable
            .keys()
            .filter(|path| !current.contains_key(*path))
            .cloned()
            .collect();
        write_view(backing, &durable)?;
        Ok(report)
    }

    /// Writes the current view to `backing` (a clean unmount).
    pub fn store_current(&mut self, backing: &Path) -> io::Result<()> {
        self.sync_all();
        let (current, _) = self.view(false, None);
        write_view(backing, &current)
    }
}

/// The durable data with the pages of `[offset, offset + kept)` as they are now: a page reaches
/// the disk whole, with any earlier unsynced write to it. The size grows to the kept end.
fn with_torn_pages(mut data: Data, current: &Data, offset: u64, kept: u64) -> Data {
    let size = data.size().max(offset + kept);
    for page in offset / PAGE..(offset + kept).div_ceil(PAGE) {
        data.write(page * PAGE, &current.read(page * PAGE, PAGE));
    }
    data.set_size(size);
    data
}

/// How much of a torn write survives: a prefix ending on a 4 KiB boundary of the file, or the
/// whole write; drawn from the seed and the file's path, so one seed gives one outcome.
pub fn torn_prefix(seed: u64, path: &Path, offset: u64, len: u64) -> u64 {
    let end = offset + len;
    let mut cuts: Vec<u64> = vec![0];
    let mut boundary = (offset / PAGE + 1) * PAGE;
    while boundary < end {
        cuts.push(boundary - offset);
        boundary += PAGE;
    }
    cuts.push(len);
    let mut hash = seed ^ 0x9e37_79b9_7f4a_7c15;
    for byte in path.as_os_str().as_encoded_bytes() {
        hash = splitmix(hash ^ u64::from(*byte));
    }
    hash = splitmix(hash ^ offset ^ len.rotate_left(32));
    cuts[to_usize(hash % cuts.len() as u64)]
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Makes `backing` hold exactly `view`: files whose bytes already match are left alone, every
/// other file is written anew, and names the view lacks are removed.
fn write_view(backing: &Path, view: &View) -> io::Result<()> {
    // Remove what the view does not hold, or holds as another kind.
    remove_extra(backing, Path::new(""), view)?;
    for (path, entry) in view {
        let full = backing.join(path);
        match entry {
            Entry::Dir { mode, .. } => {
                if !full.is_dir() {
                    fs::create_dir(&full)?;
                }
                fs::set_permissions(&full, fs::Permissions::from_mode(*mode | 0o700))?;
            }
            Entry::File { mode, data, .. } => {
                let same =
                    full.is_file() && Data::load(&full).is_ok_and(|on_disk| on_disk == *data);
                if !same {
                    data.store(&full, *mode)?;
                } else {
                    fs::set_permissions(&full, fs::Permissions::from_mode(*mode))?;
                }
            }
        }
    }
    Ok(())
}

fn remove_extra(backing: &Path, rel: &Path, view: &View) -> io::Result<()> {
    for entry in fs::read_dir(backing.join(rel))? {
        let entry = entry?;
        let rel_path = rel.join(entry.file_name());
        let kind = entry.file_type()?;
        let keep = match view.get(&rel_path) {
            Some(Entry::Dir { .. }) => kind.is_dir(),
            Some(Entry::File { .. }) => kind.is_file(),
            None => false,
        };
        if kind.is_dir() {
            if keep {
                remove_extra(backing, &rel_path, view)?;
            } else {
                fs::remove_dir_all(backing.join(&rel_path))?;
            }
        } else if !keep {
            fs::remove_file(backing.join(&rel_path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn data_reads_back_writes_holes_and_truncation() {
        let mut data = Data::default();
        data.write(5000, b"hello");
        assert_eq!(data.size(), 5005);
        assert_eq!(data.read(0, 4), vec![0; 4]);
        assert_eq!(data.read(5000, 100), b"hello");
        data.set_size(5002);
        data.set_size(5010);
        assert_eq!(data.read(5000, 10), b"he\0\0\0\0\0\0\0\0");
        data.write(1 << 20, &[0; 8192]);
        assert_eq!(
            data.pages.len(),
            1,
            "zeros over missing pages store nothing"
        );
        assert_eq!(data.size(), (1 << 20) + 8192);
        data.set_size(5010);
        data.zero(5000, 1);
        assert_eq!(data.read(5000, 2), b"\0e");
        data.set_size(0);
        assert!(data.pages.is_empty());
        let mut zeros = Data::default();
        zeros.write(0, b"x");
        zeros.write(0, b"\0");
        assert_eq!(zeros.pages.len(), 1);
        let mut hole = Data::default();
        hole.set_size(1);
        assert_eq!(zeros, hole, "a stored page of zeros equals a hole");
    }

    #[test]
    fn torn_prefixes_end_on_page_boundaries_and_follow_the_seed() {
        let path = Path::new("a/b");
        let mut seen = BTreeSet::new();
        for seed in 0..200 {
            let kept = torn_prefix(seed, path, 4096, 5 * 4096 + 100);
            assert!(
                kept == 5 * 4096 + 100 || kept.is_multiple_of(4096),
                "{kept}"
            );
            assert_eq!(kept, torn_prefix(seed, path, 4096, 5 * 4096 + 100));
            seen.insert(kept);
        }
        // 0, 4 KiB .. 20 KiB and the whole write: every outcome is drawn.
        assert_eq!(seen.len(), 7, "{seen:?}");
        // Unaligned: the prefix ends on the file's page boundaries.
        for seed in 0..50 {
            let kept = torn_prefix(seed, path, 100, 10_000);
            assert!([0, 3996, 8092, 10_000].contains(&kept), "{kept}");
        }
    }

    #[test]
    fn a_torn_write_keeps_whole_pages_as_they_are_now() {
        let mut durable = Data::default();
        durable.write(0, &[b'a'; 8192]);
        let mut current = durable.clone();
        current.write(10, b"EE");
        current.write(1000, &[b'b'; 9000]);
        let kept = with_torn_pages(durable.clone(), &current, 1000, 3096);
        assert_eq!(kept.size(), 8192);
        assert_eq!(kept.read(0, 4096), current.read(0, 4096));
        assert_eq!(kept.read(4096, 4096), durable.read(4096, 4096));
        let all = with_torn_pages(durable, &current, 1000, 9000);
        assert_eq!(all, current);
    }
}
