// Files and folders that appear whole or not at all, and file-system errors that name their path.
// Is: the one way aha writes outputs — a file or folder is built under `<name>.tmp-<pid>` and renamed into place; a
// folder that replaces an older one moves the old aside as `<name>.old-<pid>` first and removes it only once the new
// one is in place; a folder is removed by renaming it to `<name>.trash-<pid>` first; temporary names left by processes
// that died (kill -9, power loss) are removed, or the old folder put back, by cleanStaleTemps at the next start;
// every error path removes its temporary name.
// Is not: crash-consistent across power loss (no fsync of folders), nor a lock: two live processes writing the same
// output are not detected (pids tell only dead from alive).
// Simplifies: between the two renames of a replacement a kill leaves only `<name>.old-<pid>` (Node has no
// renameat2(RENAME_EXCHANGE)); cleanStaleTemps restores it, so the next start sees the old folder, whole.
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";

/** The temporary name this process writes `path` under. */
export const tempName = (path: string): string => `${path}.tmp-${process.pid}`;

/** An fs error with the path it concerns and a plain cause: "cannot write <path>: no space left on device (ENOSPC)". */
export function fsError(e: unknown, what: string, path: string): Error {
  const err = e as NodeJS.ErrnoException;
  if (!err || typeof err !== "object" || !err.code) return e as Error;
  if ((err as { aha?: boolean }).aha) return err; // already named by an inner call
  const cause = err.message.replace(/^[A-Z]+: /, "").replace(/, \w+( '.*')?$/, "");
  return Object.assign(new Error(`cannot ${what} ${path}: ${cause} (${err.code})`), { code: err.code, path, aha: true });
}

/** Run fn; an fs error it throws comes back naming `path`. */
export function namingPath<T>(what: string, path: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw fsError(e, what, path);
  }
}

/** Write all of `b` at the file's position, in slices of at most 1 GiB (one write call takes at most 2 GiB); returns its length. */
export function writeAll(fd: number, b: Uint8Array): number {
  for (let o = 0; o < b.byteLength;) o += writeSync(fd, b, o, Math.min(b.byteLength - o, 1 << 30));
  return b.byteLength;
}

/** Create a folder (and its parents); an error names it. */
export function ensureDir(dir: string): void {
  namingPath("create folder", dir, () => {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e) {
      // a recursive mkdir says ENOENT where the parent exists but cannot be written (EROFS, EACCES): ask again plainly
      if ((e as NodeJS.ErrnoException).code === "ENOENT" && existsSync(dirname(dir))) mkdirSync(dir);
      throw e;
    }
  });
}

/**
 * Write a file through `<path>.tmp-<pid>` and rename: a crash never leaves a partial file under the real name, and
 * an error removes the temporary file and names `path`. `write` streams into the open descriptor.
 */
export function writeFileVia(path: string, write: (fd: number) => void): void {
  ensureDir(dirname(path));
  const tmp = tempName(path);
  try {
    const fd = openSync(tmp, "w");
    try {
      write(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw fsError(e, "write", path);
  }
}

/** Write `data` (a string, a buffer, or pieces written in order) atomically. */
export function writeFileAtomic(path: string, data: Buffer | string | Uint8Array | Uint8Array[]): void {
  const parts = typeof data === "string" ? [Buffer.from(data, "utf8")] : Array.isArray(data) ? data : [data];
  writeFileVia(path, (fd) => { for (const p of parts) writeAll(fd, p); });
}

/** Throw unless `path` is absent or a folder (checked before anything is built). */
export function checkFolderTarget(path: string): void {
  if (existsSync(path) && !statSync(path).isDirectory()) throw new Error(`${path} exists and is not a folder; remove it or choose another name`);
}

/**
 * Build a folder under `<out>.tmp-<pid>` and swap it in: an existing `out` is moved to `<out>.old-<pid>`, the new
 * folder renamed to `out`, then the old one removed. Any error removes the temporary folder (and puts the old one
 * back); messages name `out`, not the temporary name.
 */
export function writeFolderAtomic(out: string, build: (tmp: string) => void): void {
  checkFolderTarget(out);
  const tmp = tempName(out), old = `${out}.old-${process.pid}`;
  try {
    rmSync(tmp, { recursive: true, force: true });
    ensureDir(tmp);
    build(tmp);
    if (existsSync(out)) {
      renameSync(out, old);
      try {
        renameSync(tmp, out);
      } catch (e) {
        renameSync(old, out);
        throw e;
      }
      try { rmSync(old, { recursive: true, force: true }); } catch { /* the new folder is in place; a leftover is cleaned at the next start */ }
    } else renameSync(tmp, out);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    const err = fsError(e, "write", out);
    err.message = err.message.split(tmp).join(out);
    throw err;
  }
}

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Remove a folder so that a kill never leaves part of it under its name: renamed to `<dir>.trash-<pid>` first. */
export function removeFolder(dir: string): void {
  if (!existsSync(dir)) return;
  const trash = `${dir}.trash-${process.pid}`;
  namingPath("remove", dir, () => {
    renameSync(dir, trash);
    rmSync(trash, { recursive: true, force: true });
  });
}

/**
 * Remove the temporary names (`<base>.tmp-<pid>`, `<base>.trash-<pid>`) that dead processes left in `dir`, for the
 * bases `owns` accepts; an `<base>.old-<pid>` is put back as `<base>` when that is missing (a kill between the two
 * renames of a replacement), else removed. Returns what it did, one line each.
 */
export function cleanStaleTemps(dir: string, owns: (base: string) => boolean): string[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return [];
  const done: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const m = /^(.+)\.(tmp|old|trash)-(\d+)$/.exec(name);
    if (!m || !owns(m[1]) || alive(Number(m[3]))) continue;
    const path = join(dir, name), base = join(dir, m[1]);
    if (m[2] === "old" && !existsSync(base)) {
      namingPath("restore", base, () => renameSync(path, base));
      done.push(`restored ${base} from ${name} (left by process ${m[3]})`);
    } else {
      namingPath("remove", path, () => rmSync(path, { recursive: true, force: true }));
      done.push(`removed ${path} (left by process ${m[3]})`);
    }
  }
  return done;
}
